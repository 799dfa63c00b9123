"""A finalised batch lets go of its lines' job records.

While a batch runs, each line's job record and event log must outlive the line itself: the
output file is written from them when the last line ends, which may be a whole completion window
(24 h) after the first one did. So a batch's job is kept ``keep_s`` (the window plus
``retention.result_ttl_s``) instead of ``result_ttl_s`` after it ends. Once the output and
error files are written that reason is gone, and keeping 2 keys per line for another day is
what made Redis grow by ~430 keys for every 200-line batch in a steady soak. This pass sets each
line's record and log to expire ``result_ttl_s`` from now (no earlier than a plain job's would:
every line ended before finalisation), page by page.

A job handed off to another shard (``moved_to``) is released there as well as at home. A crash
before or during this pass leaves the remaining lines at their longer TTL, which is still
bounded: they expire on their own.
"""

from __future__ import annotations

from redis.asyncio import Redis

from anygate.broker.keys import KeySpace


async def release_lines(redis: Redis, keys: KeySpace, pages: list[list[str]], ttl_s: int) -> int:
    """Expire the job record and event log of every line in ``pages`` ``ttl_s`` from now;
    returns how many records were still there."""
    found = 0
    for job_ids in pages:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                home = keys.for_job(job_id)
                pipe.hget(home.job(job_id), "moved_to")
                pipe.expire(home.job(job_id), ttl_s)
                pipe.expire(home.events(job_id), ttl_s)
            replies = await pipe.execute()
        moved = [
            (job_id, shard) for job_id, shard in zip(job_ids, replies[0::3], strict=True) if shard
        ]
        found += sum(1 for hit in replies[1::3] if hit)
        if moved:
            async with redis.pipeline(transaction=False) as pipe:
                for job_id, shard in moved:
                    there = keys.on(shard.decode() if isinstance(shard, bytes) else shard)
                    pipe.expire(there.job(job_id), ttl_s)
                    pipe.expire(there.events(job_id), ttl_s)
                await pipe.execute()
    return found
