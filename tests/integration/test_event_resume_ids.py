"""Resuming a job's event stream after an id (``Last-Event-ID`` or ``?after=``): an id Redis
would refuse is a 400 naming where it came from, answered before any stream begins; every id
Redis takes, the largest included, gives a stream that ends normally."""

from __future__ import annotations

import httpx

from tests.support.stack import Stack

OUT_OF_RANGE = [
    "18446744073709551616-0",
    "1-18446744073709551616",
    "18446744073709551616",
    "99999999999999999999999999-0",
]
MALFORMED = ["+1-0", "1-", "-1", "1-2-3", "1_0-0", "1 -0", "$", "1-0 x"]


async def finished_job(client: httpx.AsyncClient) -> str:
    job = {
        "endpoint": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    job_id = str((await client.post("/v1/jobs", json=job)).json()["id"])
    done = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 10})).json()
    assert done["status"] == "succeeded"
    return job_id


def refusal(response: httpx.Response, param: str) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    return str(error["message"])


async def test_an_id_redis_would_refuse_is_a_400_naming_the_header_or_parameter(
    stack: Stack,
) -> None:
    async with stack.client() as client:
        job_id = await finished_job(client)
        url = f"/v1/jobs/{job_id}/events"
        for value in OUT_OF_RANGE + MALFORMED:
            why = "at most 18446744073709551615" if value in OUT_OF_RANGE else "decimal digits"
            header = await client.get(url, headers={"last-event-id": value})
            message = refusal(header, "Last-Event-ID")
            assert message.startswith("Last-Event-ID: ")
            assert why in message
            query = await client.get(url, params={"after": value})
            message = refusal(query, "after")
            assert message.startswith("after: ")
            assert why in message


async def test_the_header_wins_over_the_query_as_an_eventsource_reconnect_sends_both(
    stack: Stack,
) -> None:
    async with stack.client() as client:
        job_id = await finished_job(client)
        url = f"/v1/jobs/{job_id}/events"
        bad_header = await client.get(
            url, params={"after": "0-0"}, headers={"last-event-id": OUT_OF_RANGE[0]}
        )
        refusal(bad_header, "Last-Event-ID")
        bad_query = await client.get(
            url, params={"after": OUT_OF_RANGE[1]}, headers={"last-event-id": "0-0"}
        )
        assert bad_query.status_code == 200


async def test_ids_at_the_edges_of_64_bits_resume_and_end(stack: Stack) -> None:
    """The largest id (which Redis refuses as an exclusive range start) and ids with leading
    zeros are valid: the replay after them is what follows them, and the stream ends."""
    top = 2**64 - 1
    async with stack.client() as client:
        job_id = await finished_job(client)
        url = f"/v1/jobs/{job_id}/events"
        whole = await client.get(url)
        ids = [line[4:] for line in whole.text.splitlines() if line.startswith("id: ")]
        assert len(ids) >= 3
        for after, expected in [
            (f"{top}-{top}", []),
            (f"{top}", []),
            (f"{top}-0", []),
            ("0", ids),
            ("00000000000000000000000000-0", ids),
            ("0" + ids[0], ids[1:]),
        ]:
            for where in ("header", "query"):
                response = await client.get(
                    url,
                    params={"after": after} if where == "query" else {},
                    headers={"last-event-id": after} if where == "header" else {},
                    timeout=10,
                )
                assert response.status_code == 200, (after, response.text)
                got = [line[4:] for line in response.text.splitlines() if line[:4] == "id: "]
                assert got == expected, (after, where)


async def test_list_cursors_are_object_ids_so_the_issues_values_page_to_nothing(
    stack: Stack,
) -> None:
    """The lists' ``after`` names an object (a job, file or batch id), not a stream id: it is
    looked up, never given to Redis as a stream id, so these values find no page, not a 500."""
    async with stack.client() as client:
        await finished_job(client)
        for path in ("/v1/jobs", "/v1/files", "/v1/batches"):
            for value in OUT_OF_RANGE + MALFORMED:
                response = await client.get(path, params={"after": value})
                assert response.status_code == 200, (path, value, response.text)
                assert response.json()["data"] == []
