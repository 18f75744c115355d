"""The one door to Optuna storages: nothing else in pisearch imports ``optuna.storages`` or reads a URL's scheme.

A :class:`Store` is opened from a URL (``sqlite:///FILE``, ``postgresql+psycopg://…``, ``mysql+pymysql://…``,
``journal:///FILE`` or ``FILE.log``) to create and run studies, or read-only from a run folder, storage file or URL
(:func:`read_study`). It knows each study's fidelity-level studies (``<name>@L<k>``), builds trials tables
(:func:`trials_frame`, one row per trial and level) and deals with trials whose process died: server storages fail
them by heartbeat and re-queue them once, file storages re-queue them on the next start (:meth:`Store.requeue_dead`).
A re-queued trial carries ``retry_of`` (the dead trial's number) and the attrs that name its candidate, nothing else.
A process that runs trials on a file storage holds it :class:`Live` (a shared lock beside the file), so that no
other process takes its running trials for dead.
"""

from pisearch.study.store._frames import (
    CHECK_ATTR, CHECK_LEVEL, COLUMNS, MEASURED, OUTSIDE_MEASURED, OUTSIDE_SPACE, PARENT, RETRY_OF, base_names,
    check_name, level_count, level_name, level_rows, measured_outside, measured_records, seeds_name, trials_frame,
)
from pisearch.study.store._live import Live
from pisearch.study.store._location import (KINDS, Location, default_location, display_url, locate, locate_existing,
                                            run_folder)
from pisearch.study.store._store import Store, StoredStudy, read_study, reading, requeue

__all__ = [
    "CHECK_ATTR", "CHECK_LEVEL", "COLUMNS", "KINDS", "Live", "MEASURED", "OUTSIDE_MEASURED", "OUTSIDE_SPACE", "PARENT",
    "RETRY_OF", "Location", "Store", "StoredStudy", "base_names", "check_name", "default_location", "display_url",
    "level_count", "level_name", "level_rows", "locate", "locate_existing", "measured_outside", "measured_records",
    "read_study", "reading", "requeue", "run_folder", "seeds_name", "trials_frame",
]
