import Multiprocessing
Multiprocessing.bootstrap()
