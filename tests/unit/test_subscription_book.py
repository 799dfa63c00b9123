"""The shared-subscription bookkeeping (``broker/subscription_book.py``): what is sent when,
and which confirmation makes a channel live."""

from __future__ import annotations

from anygate.broker.subscription_book import SubscriptionBook, chunked


def _plan(book: SubscriptionBook, wanted: set[str]) -> tuple[list[str], list[str]]:
    subscribe, unsubscribe = book.plan(wanted.__contains__)
    return sorted(subscribe), sorted(unsubscribe)


def test_joins_of_one_turn_are_one_subscribe_and_live_once_each_is_confirmed() -> None:
    book = SubscriptionBook()
    for channel in ("a", "b", "c"):
        book.touch(channel)
    assert _plan(book, {"a", "b", "c"}) == (["a", "b", "c"], [])
    assert not book.live("a")
    assert book.confirmed("a")
    assert book.live("a")
    assert not book.live("b")
    assert _plan(book, {"a", "b", "c"}) == ([], [])  # nothing touched: nothing sent


def test_a_channel_left_and_joined_within_one_turn_sends_nothing() -> None:
    book = SubscriptionBook()
    book.touch("a")
    _plan(book, {"a"})
    book.confirmed("a")
    book.touch("a")  # the last listener left ...
    book.touch("a")  # ... and a new one came
    assert _plan(book, {"a"}) == ([], [])
    assert book.live("a")


def test_a_channel_whose_last_listener_left_is_unsubscribed_and_no_longer_live() -> None:
    book = SubscriptionBook()
    book.touch("a")
    _plan(book, {"a"})
    book.confirmed("a")
    book.touch("a")
    assert _plan(book, set()) == ([], ["a"])
    assert not book.live("a")
    assert book.subscribed == frozenset()


def test_a_stale_confirmation_does_not_make_a_resubscribed_channel_live() -> None:
    """SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE before any reply: the first reply confirms the first
    SUBSCRIBE only; the channel is live on the second."""
    book = SubscriptionBook()
    book.touch("a")
    _plan(book, {"a"})
    book.touch("a")
    _plan(book, set())
    book.touch("a")
    assert _plan(book, {"a"}) == (["a"], [])
    assert not book.confirmed("a")
    assert not book.live("a")
    assert book.confirmed("a")
    assert book.live("a")


def test_a_confirmation_of_a_channel_unsubscribed_since_makes_nothing_live() -> None:
    book = SubscriptionBook()
    book.touch("a")
    _plan(book, {"a"})
    book.touch("a")
    _plan(book, set())
    assert not book.confirmed("a")
    assert not book.live("a")


def test_a_reconnect_subscribes_everything_sent_and_forgets_replies_of_the_old_connection() -> None:
    book = SubscriptionBook()
    for channel in ("a", "b"):
        book.touch(channel)
    _plan(book, {"a", "b"})
    book.confirmed("a")
    book.touch("b")
    book.touch("c")
    _plan(book, {"a", "b", "c"})  # c: sent; b: its first reply still due
    assert book.reconnected() == ["a", "b", "c"]
    assert not book.live("a")  # on the new connection, not confirmed yet
    assert book.confirmed("b")  # one confirmation due each, whatever was due before
    assert book.live("b")


def test_chunks_keep_every_channel_once_in_order() -> None:
    channels = [f"c{i}" for i in range(2500)]
    parts = chunked(channels, 1000)
    assert [len(p) for p in parts] == [1000, 1000, 500]
    assert [c for p in parts for c in p] == channels
    assert chunked([], 1000) == []
