"""Opening an index for a command or a server, so the failures a user can fix are told as such at start-up: a
folder that another process holds (IndexBusyError) or a Qdrant server that does not answer (IndexUnavailableError).
"""

import contextlib
import warnings

from captioning.search.index import ImageIndex
from captioning.util.errors import Unavailable


class IndexUnavailableError(Unavailable):
    """The Qdrant server named by --qdrant_url does not answer."""


def check_reachable(index: ImageIndex, qdrant_url: str = None) -> None:
    """Asks the index for its collections once: qdrant-client connects lazily, so an unreachable server would
    otherwise surface on the first request."""
    from qdrant_client.http.exceptions import ApiException  # heavy: only once an index is opened

    try:
        index.versions()
    except (ApiException, OSError) as error:
        where = f"the Qdrant server at {qdrant_url}" if qdrant_url else "the index"
        raise IndexUnavailableError(
            f"cannot reach {where} ({str(error).strip() or type(error).__name__}): start it or fix --qdrant_url"
        ) from None


@contextlib.contextmanager
def without_version_warning():
    """qdrant-client warns (two lines) when it cannot ask an unreachable server for its version; check_reachable
    then reports the same problem in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to obtain server version", category=UserWarning)
        yield


def open_index(index_dir: str, qdrant_url: str = None) -> ImageIndex:
    with without_version_warning():
        index = ImageIndex(index_dir, qdrant_url)
    try:
        check_reachable(index, qdrant_url)
    except IndexUnavailableError:
        index.close()
        raise
    return index
