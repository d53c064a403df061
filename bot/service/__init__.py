"""``diplobot run``: the long-running service — sync, plan, translate ahead, publish on time.

APScheduler is only the clock (``clock.py``); the ledger is the truth. On every start and every
content change the schedule is rebuilt from content + ledger (never from pickled jobs):

- *sync* (every ``DIPLOBOT_SYNC_INTERVAL`` s, and at once on a signed webhook): refresh the
  source; an invalid revision is reported and the last good one keeps running;
- *apply* (when the revision changed): the pipeline's stages (``bot/pipeline.py``) — plan,
  translate ahead of time, record deliveries in the ledger — then cancel those of deleted posts
  and parts (``changes.py``), and set a clock job at each due instant. A revision is marked
  good only once it validated *and* applied: one whose checking or applying raises is
  reported like an invalid one (alert, ``/status``, log) and tried again later;
- *follow_up* (every sweep interval): deliveries whose translation failed (HELD) are tried
  again with growing waits until their lateness window closes (then EXPIRED, alerted); open
  deliveries of removed content are settled (reconciled, cancelled), never sent;
- *run_due* (at each due instant, and every sweep): deliver what is due (``dispatch.py``),
  through the same function as ``post-now``, with the lateness window, blackouts and pauses
  applied;
- *sweep* (every few seconds): heartbeat, crash recovery, retries whose ``retry_at`` passed;
- *watch* (every sweep interval): mark this service in the state; every
  ``DIPLOBOT_WATCH_INTERVAL`` and after each burst of posts, read each account's timeline for
  posts of our content another publisher sent (``bot/publish/watch.py``).

``lifecycle.py`` starts and stops it all and runs the sync → apply flow; ``views.py`` is what
``/status`` and ``/metrics`` show.
"""

from bot.service.lifecycle import Service

__all__ = ["Service"]
