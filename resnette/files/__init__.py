"""The one gate to the file system: every file resnette opens, writes or deletes goes through here.

Each command used to open, read, write and delete on its own, and each got one of the same
bugs: a FIFO where a file was expected hung it, a link made it write outside its folder, an
`--out` replaced a run's weights, `--overwrite` deleted a folder that merely held a
`config.toml`. So the rules live once, here (tests/test_files_gate.py fails on any `open(`,
`read_text`, `torch.load`, `shutil.rmtree`, ... elsewhere in the package):

- reading: regular files only, opened without blocking and checked with `fstat` (a FIFO,
  device, socket or folder is one line, never a hang); small files have a size cap; a link is
  followed only where the caller's contract says so (`follow=False`: locks and markers);
- locks and markers: `O_NOFOLLOW`, regular files only, never truncated or written through a
  link, so a run folder or a cache received from someone else cannot make resnette write
  outside it;
- outputs (`output`): never onto a run folder's own files, never onto a non-regular file, and
  a missing parent folder is made only when the command says it makes one;
- deleting (`remove_owned`): only a folder that holds resnette's marker; a link is removed as
  a link, never followed; the caller is told what was removed.

reading.py, writing.py and owned.py hold them; import from `resnette.files`. Imports no torch
at import time (load_torch imports it when called), like resnette/utils.py.
"""
from resnette.files.owned import (ENTRY_MARKER, RUN_MARKER, check_inside_run, has_marker,
                                  is_entry, is_run_folder, make_folder, output, remove_owned,
                                  remove_temporary, write_marker)
from resnette.files.reading import (SMALL, check_regular_file, disk_bytes, load_torch, open_fd,
                                    open_read, peek, read_bytes, read_json, read_small, read_text)
from resnette.files.writing import (atomic_write, open_dir, open_lock, open_temporary, open_write,
                                    null_stream, umask_mode, write_bytes, write_text)

__all__ = ["ENTRY_MARKER", "RUN_MARKER", "SMALL", "atomic_write", "check_regular_file",
           "check_inside_run", "disk_bytes", "has_marker", "make_folder", "is_entry", "is_run_folder", "load_torch", "open_dir", "open_fd",
           "open_lock", "open_read", "open_temporary", "open_write", "null_stream", "output", "peek",
           "read_bytes", "read_json", "read_small", "read_text", "remove_owned",
           "remove_temporary", "umask_mode", "write_bytes", "write_marker", "write_text"]
