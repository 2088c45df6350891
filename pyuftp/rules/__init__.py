"""Business rules: what a careful counterparty checks beyond the schema, as data.

A :class:`Rule` is a small named check with an id (``isp.within_period``), the message types
it applies to, a one-line description, a default on/off and the validators of the Java
reference library (``shapeshifter-library-java``) it matches. It returns the problems it
finds, in words a person at the other party understands. :class:`Rules` holds them::

    rules = Rules()                                   # every rule, with its default
    rules.disable("currency.iso4217")
    rules.settings.isp_durations = {timedelta(minutes=5), timedelta(minutes=15)}
    @rules.rule("contract.active", ["FlexOrder"], "the contract is active")
    def active(ctx): ...                              # may use ctx.lookups / ctx.referenced
    problems = rules.check("FlexOffer", payload)      # the stateless rules; [] when fine
    problems = rules.check_all(context)               # all sync rules, the archive's too
    problems += await rules.check_async(context)      # the user's async rules, if any

Stateless rules look at the message and the clock; stateful ones look a referenced message
up through the context's :class:`Lookups` (sync: ``find``/``query``/``payload``/
``highest_revision``, as the store's own methods are). Every rule is a plain function, so
the exchange core runs them without an event loop; the layers above run that step through
``store.call``, on a worker thread when the store is threaded. A rule the user writes as
``async def`` still works: ``check_all`` leaves it out, and the receiving and sending layers
await ``check_async`` right after (its look-ups are the same sync :class:`Lookups`).
All problems of a message are reported together. No I/O here: the look-ups are passed in.
"""
from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..exceptions import RuleViolation, StoreError, excerpt
from .context import (UTC, Check, Context, Lookups, OutOfRange, Rule, Settings, _now,
                      day_bounds, isp_count, isp_end)
from .references import REFERENCES
from .stateful import STATEFUL
from .stateless import STATELESS

BUILT_IN: tuple[Rule, ...] = STATELESS + STATEFUL + REFERENCES
logger = logging.getLogger(__name__)


def _failed(rule: Rule, message_type: str, exc: Exception) -> list[str]:
    """The problem a rule that raised becomes, logged once: a rule must not stop the others,
    nor the message's answer (the sender gets a rejection that names the rule)."""
    logger.warning("rule %s could not check a %s: %s: %s", rule.id, excerpt(message_type, 40),
                   type(exc).__name__, excerpt(exc, 160))
    return [f"rule {rule.id} could not be checked: {type(exc).__name__}"]


def awaits(rule: Rule) -> bool:
    """Whether the rule's check is an ``async def`` (one of the user's): run by
    :meth:`Rules.check_async`, never by the sync checks."""
    return inspect.iscoroutinefunction(rule.check) or inspect.iscoroutinefunction(
        getattr(rule.check, "__call__", None))


class Rules:
    """The registry: every rule with its on/off state, and :attr:`settings`."""

    def __init__(self, rules: Iterable[Rule] | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._rules: dict[str, Rule] = {}
        # per (message type, stateful): the enabled sync rules and async ones, in order;
        # emptied whenever a rule is added, enabled or disabled (or _enabled replaced)
        self._plans: dict[tuple[str, bool | None], tuple[tuple[Rule, ...],
                                                         tuple[Rule, ...]]] = {}
        self._enabled = set()
        for rule in BUILT_IN if rules is None else rules:
            self.add(rule)

    @property
    def _enabled(self) -> set[str]:
        return self._on

    @_enabled.setter
    def _enabled(self, ids: set[str]) -> None:  # a test's fixture restores a saved set so
        self._on = ids
        self._plans.clear()

    def __iter__(self) -> Any:
        return iter(self._rules.values())

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[self._known(rule_id)]

    def enabled(self, rule_id: str) -> bool:
        return self._known(rule_id) in self._enabled

    def add(self, rule: Rule, enabled: bool | None = None) -> Rule:
        self._plans.clear()
        self._rules[rule.id] = rule
        if rule.default if enabled is None else enabled:
            self._enabled.add(rule.id)
        else:
            self._enabled.discard(rule.id)
        return rule

    def rule(self, rule_id: str, applies_to: Iterable[str], description: str, *,
             default: bool = True, stateful: bool = False) -> Callable[[Check], Check]:
        """Decorator: register ``check`` as a rule of your own: a plain function of the
        :class:`Context` (the look-ups are sync), or an ``async def`` (awaited by
        :meth:`check_async`; counted as stateful)."""
        def register(check: Check) -> Check:
            self.add(Rule(rule_id, frozenset(applies_to), description, check, default,
                          stateful or inspect.iscoroutinefunction(check)))
            return check
        return register

    def stateless(self) -> Rules:
        """A copy with only the stateless rules on (those that need no archive)."""
        copy = Rules(self._rules.values(), self.settings)
        copy._enabled = {r for r in self._enabled if not self._rules[r].stateful}
        return copy

    def enable(self, *rule_ids: str) -> None:
        self._plans.clear()
        self._enabled.update(self._known(r) for r in rule_ids)

    def disable(self, *rule_ids: str) -> None:
        self._plans.clear()
        for rule_id in rule_ids:
            self._enabled.discard(self._known(rule_id))

    def _known(self, rule_id: str) -> str:
        if rule_id not in self._rules:
            raise KeyError(f"no rule {rule_id!r}; the rules are {', '.join(sorted(self._rules))}")
        return rule_id

    def for_type(self, message_type: str, stateful: bool | None = None) -> list[Rule]:
        return [r for r in self._rules.values() if r.id in self._enabled
                and message_type in r.applies_to and (stateful is None or r.stateful == stateful)]

    def _plan(self, message_type: str,
              stateful: bool | None = None) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """:meth:`for_type`, split into the sync rules and the ``async def`` ones; worked
        out once per message type (not for every message)."""
        key = (message_type, stateful)
        plan = self._plans.get(key)
        if plan is None:
            rules = self.for_type(message_type, stateful)
            plan = self._plans[key] = (tuple(r for r in rules if not awaits(r)),
                                       tuple(r for r in rules if awaits(r)))
        return plan

    def check(self, message_type: str, payload: Mapping[str, Any], *,
              now: dt.datetime | None = None, direction: str = "out",
              counterparty: str = "") -> list[str]:
        """The problems the stateless rules find (sync rules only)."""
        ctx = Context(message_type, payload, direction, counterparty, now or _now(payload),
                      self.settings)
        problems = []
        for rule in self._plan(message_type, stateful=False)[0]:  # check_async: the async
            try:
                texts = list(rule.check(ctx))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - any rule's fault is one problem
                problems += _failed(rule, message_type, exc)
                continue
            problems += [f"{text} [{rule.id}]" for text in texts]
        return problems

    def check_all(self, ctx: Context) -> list[str]:
        """The problems every enabled sync rule finds (stateless and stateful, the latter
        through ``ctx.lookups``). No event loop: the exchange core runs this step. A
        StoreError from the look-ups propagates (the store failed, not the rule)."""
        ctx.settings = self.settings
        problems = []
        for rule in self._plan(ctx.message_type)[0]:  # check_async runs the async ones
            try:
                texts = list(rule.check(ctx))  # type: ignore[arg-type]
            except StoreError:
                raise  # the archive failed, not the rule: the caller's to handle (a 5xx)
            except Exception as exc:  # noqa: BLE001 - any rule's fault is one problem
                problems += _failed(rule, ctx.message_type, exc)
                continue
            problems += [f"{text} [{rule.id}]" for text in texts]
        return problems

    def awaiting(self, message_type: str) -> bool:
        """Whether an enabled ``async def`` rule applies to ``message_type``."""
        return bool(self._plan(message_type)[1])

    async def check_async(self, ctx: Context) -> list[str]:
        """The problems the enabled ``async def`` rules (the user's) find; [] when there are
        none. Called after :meth:`check_all`, on the event loop."""
        ctx.settings = self.settings
        problems = []
        for rule in self._plan(ctx.message_type)[1]:
            try:
                texts = list(await rule.check(ctx))  # type: ignore[misc]
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - any rule's fault is one problem
                problems += _failed(rule, ctx.message_type, exc)
                continue
            problems += [f"{text} [{rule.id}]" for text in texts]
        return problems

    def refuse(self, message_type: str, problems: list[str]) -> None:
        """Raise one :class:`RuleViolation` naming every problem, if there are any."""
        if problems:
            raise RuleViolation(message_type, problems)


#: The rule set ``create_message`` and every client and service use unless given another:
#: change it (``DEFAULT_RULES.disable(...)``, its ``settings``) to change them all.
DEFAULT_RULES = Rules()


def chosen(rules: Rules | bool | None) -> Rules | None:
    """The rule set a ``rules`` parameter names, with one meaning everywhere (the exchange
    core, the courier, ``create_message``): None (or True) the default rules
    (:data:`DEFAULT_RULES`, as they are when used), False none (None is returned), a
    :class:`Rules` those."""
    if rules is False:
        return None
    if rules is None or rules is True:
        return DEFAULT_RULES
    if not isinstance(rules, Rules):
        raise TypeError(f"rules must be a Rules, None (the default rules) or False (none), "
                        f"not {type(rules).__name__}")
    return rules

#: The Java library's validators that have no rule here, and why.
NOT_RULES = {
    "AllowedSenderValidator":
        "built in: the exchange core refuses unknown senders (HTTP 419) and wrong roles",
    "SenderMatchesEnvelopeValidator": "built in: the envelope's sender must be the payload's",
    "SenderRoleMatchesContentTypeValidator": "built in: the routes of the catalog",
    "RecipientValidator": "built in: a message must be addressed to this party",
    "DuplicateIdentifierValidator": "built in: the journal drops resends and rejects reused ids",
    "MinActivationFactorValidator": "built in: the schema bounds an offer option's "
                                    "MinActivationFactor to 0.01-1.00",
}

__all__ = ["DEFAULT_RULES", "Rule", "Rules", "Settings", "Context", "BUILT_IN", "NOT_RULES",
           "isp_count", "isp_end", "day_bounds", "OutOfRange", "RuleViolation", "Lookups",
           "Check", "UTC", "awaits", "chosen"]
