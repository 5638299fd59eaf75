# The seed's threading file copier, as the seed wrote it: one threading.Thread per
# file, 1 KiB reads, no join, no error handling. The one change: the seed copies a single flat
# directory, so this walks the tree (os.walk) and makes its directories, to copy the same data sets.
# Usage: python3 naive_threads.py SOURCE DEST
import threading
import os
import sys


def copy(file_name, source_dir, dest_dir):
    source_path = source_dir + '/' + file_name
    dest_path = dest_dir + '/' + file_name

    with open(source_path, 'rb') as source_file:
        with open(dest_path, 'wb') as dest_file:

            while True:
                data = source_file.read(1024)
                if data:
                    dest_file.write(data)
                else:
                    break


if __name__ == '__main__':

    source_dir = sys.argv[1]
    dest_dir = sys.argv[2]

    try:
        os.mkdir(dest_dir)
    except:
        print('目标文件夹已存在')

    for root, dirs, file_list in os.walk(source_dir):
        rel = os.path.relpath(root, source_dir)
        target = dest_dir if rel == '.' else dest_dir + '/' + rel
        for d in dirs:
            os.makedirs(target + '/' + d, exist_ok=True)

        for file_name in file_list:

            th = threading.Thread(target=copy, args=(file_name, root, target))

            th.start()
