// Manager test tasks.
