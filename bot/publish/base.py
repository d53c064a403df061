"""The publisher contract every channel meets (X, the dry-run outbox, later others)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class MediaItem:
    path: Path  # absolute
    alt: str | None
    data: bytes | None = None  # the file's bytes, when already read (else read from ``path``)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a platform answered for a published post: all a later part needs to reply to it.

    ``root``: the remote id of the thread's first post, when this post is a later part (None:
    it is the first). X replies by ``remote_id`` alone; a platform such as Bluesky also names
    the thread's root in a reply.
    """

    remote_id: str
    url: str | None
    root: str | None = None

    @property
    def thread_root(self) -> str:
        """The remote id of the first post of this post's thread (itself, when it is first)."""
        return self.root or self.remote_id


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One post to publish: its account, text, images and the post it replies to."""

    account: str  # account id from schedules/accounts.yaml
    handle: str
    text: str
    reply_to: Receipt | None = None  # the previous part of a thread, as it was published
    media: tuple[MediaItem, ...] = ()
    # The delivery's stable identity (post, part, account): the same for every attempt of one
    # delivery, so a platform that takes an idempotency key (Mastodon) or a record key of our
    # choosing (Bluesky) can never create the post twice. "" when there is no delivery.
    key: str = ""
    lang: str = ""  # the text's language (BCP 47), for platforms that tag posts with it
    # A repost (amplification, ``Reposter.repost``): the original as it was published, on the
    # same platform; ``text`` and ``media`` are empty then. None for a post of its own.
    repost_of: Receipt | None = None
    # Whether this process may still publish (a service replica: it holds the lease). A
    # publisher asks it again right before the request that creates the post, as late as it
    # can, and raises PublishHeld (nothing sent) when it may not: a replica frozen between
    # its claim and its request must not post once another replica has taken over.
    may_send: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)

    @property
    def reply_to_id(self) -> str | None:
        """The remote id of the post this one replies to (None: a first part)."""
        return self.reply_to.remote_id if self.reply_to is not None else None

    def receipt(self, remote_id: str, url: str | None) -> Receipt:
        """The receipt of this post once published as ``remote_id``: its thread's root is
        that of the post it replies to."""
        return Receipt(remote_id, url, self.reply_to.thread_root if self.reply_to else None)


@dataclass(frozen=True, slots=True)
class Published:
    """A post read back from an account's timeline, as it was sent: links expanded, characters
    unescaped, the link a platform appends to an image post dropped (see ``match.py``)."""

    remote_id: str
    text: str
    reply_to: str | None  # remote id of the post it replies to
    media: int  # how many images or videos it carries
    created_at: datetime | None  # when the platform says it was published
    url: str | None


@dataclass(frozen=True, slots=True)
class Foreign:
    """A post on one of our accounts that another publisher sent: it is one of our deliveries."""

    account: str
    handle: str
    post: str  # our delivery: post id and part
    part: int
    state: str  # our delivery's state when it was found
    ours: str | None  # our remote id, when POSTED here
    our_url: str | None
    theirs: str  # the foreign post's remote id
    their_url: str | None
    created_at: datetime | None
    found_at: datetime

    def json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "handle": self.handle,
            "post": self.post,
            "part": self.part,
            "state": self.state,
            "ours": self.ours,
            "our_url": self.our_url,
            "theirs": self.theirs,
            "their_url": self.their_url,
            "created_at": self.created_at.isoformat(timespec="seconds")
            if self.created_at
            else None,
            "found_at": self.found_at.isoformat(timespec="seconds"),
        }


class Publisher(Protocol):
    """Publishes to one channel for every account it holds credentials for.

    ``tests/platforms/test_publisher_contract.py`` holds every publisher to this contract."""

    name: str  # the ledger's channel: "x", "outbox"

    def publish(self, item: Outgoing) -> Receipt:
        """Publish one post.

        Raises:
            PublishRateLimited: carries ``retry_at``; the caller reschedules.
            PublishAmbiguous: the post may exist (timeout, lost connection, 5xx).
            PublishDuplicate: the platform says this text was just posted.
            PublishAuthFailed, PublishNoCredits, PublishRejected: final failures.
            PublishError: anything else; the library's exception is in ``__cause__``.
        """
        ...

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The post of ``item.account`` that is ``item``, published after ``since``, if any
        (reconcile). It is ``item`` when it has its text (as the channel gives text back: links
        shortened, characters escaped), as many images, and replies to ``item.reply_to``'s post
        (nothing, for a first part): two posts that differ only by a link are two posts.

        Raises:
            PublishError: the channel could not be read; the delivery stays UNKNOWN.
        """
        ...

    def recent(self, account: str, since: datetime) -> list[Published]:
        """The posts of ``account`` published since ``since``, newest first, whoever published
        them (a bounded number: the most recent ones when there are more). The service's watch
        for another publisher on the same account reads them (``watch.py``).

        Raises:
            PublishError: the channel could not be read.
        """
        ...

    def delete(self, account: str, remote_id: str) -> None:
        """Delete a published post (retract); one already gone is no error.

        Raises:
            PublishError: the platform did not confirm the deletion.
        """
        ...

    def whoami(self, account: str) -> str:
        """The handle (without @) the channel publishes as for ``account``: the one its
        credentials belong to (``diplobot accounts check``).

        Raises:
            ConfigError: the channel holds no credentials for ``account``.
            PublishError: the platform could not tell.
        """
        ...


@runtime_checkable
class AccountCheck(Protocol):
    """What a publisher may add to ``diplobot accounts check`` beyond ``whoami``: warnings
    about an account that an operator should act on before they bite (an optional part of
    the contract: a publisher without ``check`` has nothing to add).

    ``isinstance(publisher, AccountCheck)`` tells whether a publisher has it."""

    def check(self, account: str) -> list[str]:
        """What an operator should know about ``account``'s channel, one sentence each,
        saying what to do: a token that expires soon (Facebook: "the page token expires on
        2027-01-05, in 12 days: renew it …"), a text limit of the instance other than the
        one diplobot plans with (Mastodon). [] when there is nothing to say.

        Raises:
            ConfigError: the channel holds no credentials for ``account``.
            PublishError: the platform could not tell (the check is reported as failed).
        """
        ...


@runtime_checkable
class Reposter(Protocol):
    """What a publisher whose platform can repost adds (an optional part of the contract):
    X (``POST /2/users/:id/retweets``), Mastodon (reblog), Bluesky (an
    ``app.bsky.feed.repost`` record), the outbox. A platform that cannot (Facebook, Telegram,
    Weibo) has no such methods: the plan gives its accounts a copy instead.

    ``isinstance(publisher, Reposter)`` tells whether a publisher has it. A repost is one of
    the account's own deliveries (``Outgoing`` with ``repost_of`` set, ``key`` its delivery
    key); the platform keeps at most one repost of a post per account, so sending it again
    never makes a second one."""

    def repost(self, item: Outgoing) -> Receipt:
        """Repost ``item.repost_of`` (the original, as published) on ``item.account``.

        The receipt's ``remote_id`` is what :meth:`unrepost` undoes and :meth:`find_repost`
        finds: X's repost is named by the original's id (one repost of a post per account),
        Mastodon's by the reblog's own status id, Bluesky's by the repost record's URI.

        Raises:
            PublishRateLimited: carries ``retry_at``; the caller reschedules.
            PublishAmbiguous: the repost may exist (timeout, lost connection, 5xx).
            PublishAuthFailed, PublishNoCredits: final failures.
            PublishRejected: the original is gone (deleted, or not visible to the account),
                or the platform refused the repost.
            PublishError: anything else; the library's exception is in ``__cause__``.
        """
        ...

    def find_repost(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The repost of ``item.repost_of`` by ``item.account``, if the platform has it
        (reconcile after an ambiguous answer). ``since``: when it may have been made at the
        earliest (a platform that can only tell by reading the timeline reads from there).

        Raises:
            PublishError: the platform could not be read; the delivery stays UNKNOWN.
        """
        ...

    def unrepost(self, account: str, remote_id: str, original_id: str) -> None:
        """Undo the repost ``remote_id`` (its receipt's) of ``original_id`` by ``account``
        (retract); one already undone, or whose original is gone, is no error.

        Raises:
            PublishError: the platform did not confirm it.
        """
        ...
