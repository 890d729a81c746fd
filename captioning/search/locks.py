"""One lock per image id, so the steps of an add (look up, write the file, upsert) and of a delete (look up,
delete the point, remove the file) of one image never interleave, while different images go on in parallel.
The index's own lock covers one call, not such a sequence."""

import contextlib
import threading


class IdLocks:
    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}  # id -> [lock, holders and waiters]; an entry goes when its last user leaves

    @contextlib.contextmanager
    def hold(self, ids):
        """Holds the locks of `ids` (in sorted order, so two callers never wait on each other in a circle)."""
        ids = sorted(set(ids))
        with self._guard:
            entries = [self._locks.setdefault(image_id, [threading.Lock(), 0]) for image_id in ids]
            for entry in entries:
                entry[1] += 1
        with contextlib.ExitStack() as stack:
            try:
                for entry in entries:
                    stack.enter_context(entry[0])
                yield
            finally:
                stack.close()
                with self._guard:
                    for image_id, entry in zip(ids, entries):
                        entry[1] -= 1
                        if not entry[1]:
                            del self._locks[image_id]
