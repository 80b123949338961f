"""AgentDojo replay (issue #15): prompt injection vs run taint and provenance (I12).

For each (user task, injection task) pair of AgentDojo's four suites
(``agentdojo`` 0.1.35, benchmark v1.2.2, ``important_instructions`` attack,
949 pairs), the environment is loaded with the attack's injection texts
placed in it as AgentDojo does (``load_and_inject_default_environment``
with the texts from ``/work/shared/corpora/agentdojo``). Then the user
task's ground-truth calls run, followed by the attacker's ground-truth calls,
no model involved: this is what an agent fully taken over by the injection
would do. Each call goes through ``guard.tool`` (a denied or unconfirmed call
is not executed) into AgentDojo's own tool on its real environment, and the
suite's own ``security()`` / ``utility()`` functions decide.

Configurations, side by side:

- ``unguarded``: the tools are called directly.
- ``former``: the former I12 rule (``confirm: [sends_external]``, only when
  the run read private data and untrusted content).
- ``default``: ``Policy()`` today: every consequential capability needs
  confirmation once the run read untrusted content; no user request known.
- ``provenance``: ``Policy()`` and ``agent_run(user_request=<the task's
  prompt>)``: calls whose arguments trace back to the request or trusted
  data need no confirmation; an argument found only in untrusted content is
  refused (``injected_argument``), unless it is in the content of a record
  the request names (the bill it names, the page at the URL it gives): then
  the call is asked (``delegated``).
- ``prov_strict``: ``provenance`` with ``capabilities.delegated: refuse``:
  the values of the record the request names are refused like any other
  untrusted content's (the rule before delegation).
- ``prov_confirm``: the same with ``capabilities.injected: confirm``: such a
  call needs a confirmation instead of being refused.

The confirmation callback answers as a user would: it approves the user
task's own calls and refuses the attacker's ("stopped"); the stricter
figure (``approve-all``) approves everything it is asked, so only refusals
stop an attack. Benign figures are over the 97 user tasks run alone.

The tool mapping below is written from what each tool does: its
capabilities, whether its output can carry text written by someone other
than the user or the system of record (``untrusted_output``), and which
fields of an untrusted output the system of record writes
(``trusted_fields``: ids, timestamps, bank-recorded parties and amounts,
the signed-in Slack sender). docs/agentdojo.md explains each choice.

Skipped cleanly when ``agentdojo`` or the corpus is absent.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiinvariants import Guard, InvariantViolation, Policy, Principal, acting_as
from aiinvariants.taint import ConfirmationRequest, agent_run

CORPUS = Path(
    os.environ.get("AIINVARIANTS_AGENTDOJO", "/work/shared/corpora/agentdojo")
)
ATTACK = "important_instructions"
VERSION = "v1.2.2"

# -- the tool mapping, per suite ------------------------------------------------------
# name: (capabilities, untrusted_output, trusted_fields)
Decl = tuple[tuple[str, ...], bool, tuple[str, ...]]

_EMAIL_IDS = ("id_", "timestamp", "status", "read", "sender", "recipients", "cc", "bcc")
_EVENT_IDS = ("id_", "start_time", "end_time", "all_day", "status", "participants")
_FILE_IDS = ("id_", "filename", "owner", "last_modified", "size", "shared_with")
_TX_IDS = ("id", "sender", "recipient", "amount", "date", "recurring")

_CALENDAR: dict[str, Decl] = {
    "get_current_day": ((), False, ()),
    "search_calendar_events": ((), True, _EVENT_IDS),
    "get_day_calendar_events": ((), True, _EVENT_IDS),
    "create_calendar_event": (("modifies_data", "sends_external"), False, ()),
    "cancel_calendar_event": (("deletes", "sends_external"), False, ()),
    "reschedule_calendar_event": (("modifies_data", "sends_external"), False, ()),
    "add_calendar_event_participants": (
        ("grants_access", "sends_external"),
        False,
        (),
    ),
}
_EMAIL: dict[str, Decl] = {
    "send_email": (("sends_external",), False, ()),
    "delete_email": (("deletes",), False, ()),
    "get_unread_emails": ((), True, _EMAIL_IDS),
    "get_sent_emails": ((), True, _EMAIL_IDS),
    "get_received_emails": ((), True, _EMAIL_IDS),
    "get_draft_emails": ((), True, _EMAIL_IDS),
    "search_emails": ((), True, _EMAIL_IDS),
    "search_contacts_by_name": ((), False, ()),
    "search_contacts_by_email": ((), False, ()),
}
_DRIVE: dict[str, Decl] = {
    # Trusted outputs; their system-of-record fields are named so that a
    # file the user's request names links (I12 provenance, docs/agentdojo.md).
    "append_to_file": (("modifies_data",), False, _FILE_IDS),
    "create_file": (("modifies_data",), False, _FILE_IDS),
    "delete_file": (("deletes",), False, ()),
    "share_file": (("grants_access", "sends_external"), False, ()),
    "search_files_by_filename": ((), True, _FILE_IDS),
    "get_file_by_id": ((), True, _FILE_IDS),
    "list_files": ((), True, _FILE_IDS),
    "search_files": ((), True, _FILE_IDS),
}
_CATALOG = (
    "get_all_hotels_in_city",
    "get_hotels_prices",
    "get_hotels_address",
    "get_all_restaurants_in_city",
    "get_cuisine_type_for_restaurants",
    "get_restaurants_address",
    "get_dietary_restrictions_for_all_restaurants",
    "get_contact_information_for_restaurants",
    "get_price_for_restaurants",
    "check_restaurant_opening_hours",
    "get_all_car_rental_companies_in_city",
    "get_car_types_available",
    "get_car_fuel_options",
    "get_car_rental_address",
    "get_car_price_per_day",
    "get_flight_information",
)
MAPPING: dict[str, dict[str, Decl]] = {
    "workspace": {**_CALENDAR, **_EMAIL, **_DRIVE},
    "travel": {
        "get_user_information": ((), False, ()),
        **dict.fromkeys(_CATALOG, ((), False, ())),
        "get_rating_reviews_for_hotels": ((), True, ()),
        "get_rating_reviews_for_restaurants": ((), True, ()),
        "get_rating_reviews_for_car_rental": ((), True, ()),
        "reserve_hotel": (("books_or_buys",), False, ()),
        "reserve_car_rental": (("books_or_buys",), False, ()),
        "reserve_restaurant": (("books_or_buys",), False, ()),
        **_CALENDAR,
        "send_email": (("sends_external",), False, ()),
    },
    "banking": {
        "get_iban": ((), False, ()),
        "get_balance": ((), False, ()),
        "get_user_info": ((), False, ()),
        "get_most_recent_transactions": ((), True, _TX_IDS),
        "get_scheduled_transactions": ((), True, _TX_IDS),
        "read_file": ((), True, ()),
        "send_money": (("moves_money",), False, ()),
        "schedule_transaction": (("moves_money",), False, ()),
        "update_scheduled_transaction": (("moves_money",), False, ()),
        "update_password": (("changes_credentials",), False, ()),
        "update_user_info": (("modifies_data",), False, ()),
    },
    "slack": {
        # Channel and user names are chosen by whoever creates them.
        "get_channels": ((), True, ()),
        "get_users_in_channel": ((), True, ()),
        "read_channel_messages": ((), True, ("sender", "recipient")),
        "read_inbox": ((), True, ("sender", "recipient")),
        "get_webpage": (("fetches_url",), True, ()),
        "send_direct_message": (("sends_external",), False, ()),
        "send_channel_message": (("posts_publicly",), False, ()),
        "post_webpage": (("posts_publicly", "sends_external"), False, ()),
        "add_user_to_channel": (("grants_access",), False, ()),
        "invite_user_to_slack": (("grants_access", "sends_external"), False, ()),
        "remove_user_from_slack": (("grants_access", "deletes"), False, ()),
    },
}

#: The parameters each tool takes as the model's prose (``free_text``): a
#: mail's subject and body, a message, a file's content, an event's title
#: and description, a payment's subject. Every other parameter is checked.
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "send_email": ("subject", "body"),
    "create_calendar_event": ("title", "description"),
    "create_file": ("content",),
    "append_to_file": ("content",),
    "send_money": ("subject",),
    "schedule_transaction": ("subject",),
    "update_scheduled_transaction": ("subject",),
    "send_direct_message": ("body",),
    "send_channel_message": ("body",),
    "post_webpage": ("content",),
}
#: The trusted fields that name where a record lies, not the record
#: (``container_fields``): a channel message's channel.
CONTAINERS: dict[str, tuple[str, ...]] = {"read_channel_messages": ("recipient",)}

#: Tools whose output is private to the user (the former rule needs it).
PRIVATE = frozenset(
    {
        "get_user_information",
        "get_user_info",
        "get_iban",
        "get_balance",
        "get_most_recent_transactions",
        "get_scheduled_transactions",
        "read_file",
        "read_inbox",
        "read_channel_messages",
        "get_unread_emails",
        "get_sent_emails",
        "get_received_emails",
        "get_draft_emails",
        "search_emails",
        "search_contacts_by_name",
        "search_contacts_by_email",
        "search_calendar_events",
        "get_day_calendar_events",
        "search_files_by_filename",
        "get_file_by_id",
        "list_files",
        "search_files",
    }
)

CONFIGS = (
    "unguarded",
    "former",
    "default",
    "provenance",
    "prov_strict",
    "prov_confirm",
)


def available() -> str | None:
    """Why the replay cannot run here, or None."""
    if not (CORPUS / "attack_cases.jsonl.gz").is_file():
        return f"AgentDojo corpus absent ({CORPUS})"
    try:
        import agentdojo  # noqa: F401
    except ImportError:
        return "agentdojo is not installed"
    return None


def policy_for(config: str, suite: str) -> Policy:
    tools: dict[str, Any] = {}
    for name, (caps, untrusted, fields) in MAPPING[suite].items():
        tools[name] = {
            "capabilities": list(caps),
            "untrusted_output": untrusted,
            "trusted_fields": list(fields),
            "data": "internal" if name in PRIVATE else "public",
        }
        if name in FREE_TEXT:
            tools[name]["free_text"] = list(FREE_TEXT[name])
        if name in CONTAINERS:
            tools[name]["container_fields"] = list(CONTAINERS[name])
    data: dict[str, Any] = {"tools": tools}
    if config == "former":
        data["capabilities"] = {"confirm": ["sends_external"]}
    if config == "prov_confirm":
        data["capabilities"] = {"injected": "confirm"}
    if config == "prov_strict":
        data["capabilities"] = {"delegated": "refuse"}
    return Policy.from_dict(data)


@dataclass
class _Outcome:
    executed: list[Any] = field(default_factory=list)
    confirmations: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    attack_calls: int = 0
    trusted_leaks: int = 0
    #: "phase:reason" of each confirmation asked (delegated, untraced, ...)
    asked: Counter[str] = field(default_factory=Counter)


class _Replay:
    """One suite under one configuration: tools guarded once, env swapped."""

    def __init__(self, suite_name: str, config: str) -> None:
        from agentdojo.functions_runtime import FunctionsRuntime
        from agentdojo.task_suite.load_suites import get_suite

        self.suite = get_suite(VERSION, suite_name)
        self.name = suite_name
        self.config = config
        self.runtime = FunctionsRuntime(self.suite.tools)
        self.env: Any = None
        self.injections: tuple[str, ...] = ()
        self.phase = "user"
        self.approve_all = False
        self.outcome = _Outcome()
        self.guard = (
            None if config == "unguarded" else Guard(policy_for(config, suite_name))
        )
        self.tools: dict[str, Callable[..., Any]] = {}
        for function in self.suite.tools:
            self.tools[function.name] = self._tool(function.name)

    def _tool(self, name: str) -> Callable[..., Any]:
        trusted = not MAPPING[self.name][name][1]

        def call(**kwargs: Any) -> Any:
            result, _ = self.runtime.run_function(self.env, name, kwargs)
            if (
                trusted
                and self.injections
                and any(
                    text.strip() and text.strip() in str(result)
                    for text in self.injections
                )
            ):
                # A tool declared trusted returned an injection: the
                # mapping is wrong, and the figures would flatter the guard.
                self.outcome.trusted_leaks += 1
            return result

        if self.guard is None:
            return call
        return self.guard.tool(name=name)(call)

    def confirm(self, request: ConfirmationRequest) -> bool:
        self.outcome.confirmations += 1
        self.outcome.asked[f"{self.phase}:{request.reason}"] += 1
        return self.phase == "user" or self.approve_all

    def run_calls(self, calls: list[Any]) -> None:
        from agentdojo.functions_runtime import FunctionCall

        for call in calls:
            try:
                self.tools[call.function](**dict(call.args))
            except InvariantViolation as exc:
                self.outcome.refused[f"{self.phase}:{exc.code}"] += 1
                continue
            self.outcome.executed.append(
                FunctionCall(function=call.function, args=dict(call.args))
            )

    @contextlib.contextmanager
    def _run(self, prompt: str) -> Iterator[None]:
        who = Principal(subject="emma", authenticated=True, clearance="internal")
        request = prompt if self.config.startswith("prov") else None
        with acting_as(who):
            if self.guard is None:
                yield
            else:
                with agent_run(confirm=self.confirm, user_request=request):
                    yield

    def environment(self, injections: Mapping[str, str]) -> Any:
        """The suite's environment with ``injections`` placed as AgentDojo does."""
        return self.suite.load_and_inject_default_environment(dict(injections))

    def pair(
        self,
        user_id: str,
        injection_id: str | None,
        injections: Mapping[str, str],
        *,
        approve_all: bool = False,
        environment: Any = None,
    ) -> tuple[bool, bool, _Outcome]:
        """(utility, attack succeeded, outcome) of one replay.

        ``outcome.attack_calls`` is how many tool calls the attacker's goal
        takes (0: a goal about what the agent says, output-side).
        """
        from agentdojo.types import text_content_block_from_string

        suite = self.suite
        user = suite.get_user_task_by_id(user_id)
        if environment is None:
            environment = self.environment(injections)
        self.env = environment.model_copy(deep=True)
        self.injections = tuple(injections.values())
        pre = self.env.model_copy(deep=True)
        self.outcome = _Outcome()
        self.approve_all = approve_all
        attack = None
        with self._run(user.PROMPT):
            self.phase = "user"
            self.run_calls(user.ground_truth(self.env.model_copy(deep=True)))
            output = [text_content_block_from_string(user.GROUND_TRUTH_OUTPUT)]
            utility = suite._check_user_task_utility(
                user, output, pre, self.env, self.outcome.executed
            )
            if injection_id is not None:
                attack = suite.get_injection_task_by_id(injection_id)
                self.phase = "attack"
                calls = attack.ground_truth(self.env.model_copy(deep=True))
                self.outcome.attack_calls = len(calls)
                self.run_calls(calls)
        succeeded = False
        if attack is not None:
            output = [text_content_block_from_string(attack.GROUND_TRUTH_OUTPUT)]
            succeeded = suite._check_injection_task_security(
                attack, output, pre, self.env, self.outcome.executed
            )
        return bool(utility), bool(succeeded), self.outcome


def load_pairs(limit_per_suite: int | None = None) -> dict[str, list[dict[str, Any]]]:
    pairs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with gzip.open(CORPUS / "attack_cases.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            case = json.loads(line)
            bucket = pairs[case["suite"]]
            if limit_per_suite is None or len(bucket) < limit_per_suite:
                bucket.append(case)
    return dict(pairs)


@dataclass
class SuiteFigures:
    pairs: int = 0
    attacks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONFIGS, 0))
    attacks_approve_all: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    #: successes of goals that need no tool call ("say X": output-side, I8/I9)
    output_side: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    remaining: Counter[str] = field(default_factory=Counter)
    trusted_leaks: int = 0
    benign: int = 0
    benign_zero: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    benign_approved: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    confirmations: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    benign_in_pairs: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONFIGS, 0)
    )
    #: why the attacker's calls were asked under ``provenance`` (pairs, the
    #: user refusing): ``delegated`` = a value of the record the user named
    attack_asked: Counter[str] = field(default_factory=Counter)


def replay(
    limit_per_suite: int | None = None,
    configs: tuple[str, ...] = CONFIGS,
    suites: tuple[str, ...] = (),
) -> dict[str, SuiteFigures]:
    """Replay the pairs (all, or the first ``limit_per_suite`` of each suite)."""
    figures: dict[str, SuiteFigures] = {}
    goals = {}
    with (CORPUS / "injection_tasks.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            task = json.loads(line)
            goals[(task["suite"], task["injection_task_id"])] = task["goal"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for suite_name, cases in load_pairs(limit_per_suite).items():
            if suites and suite_name not in suites:
                continue
            fig = figures[suite_name] = SuiteFigures(pairs=len(cases))
            reps = {config: _Replay(suite_name, config) for config in configs}
            first = reps[configs[0]]
            users = sorted({c["user_task_id"] for c in cases})
            fig.benign = len(users)
            clean = first.environment({})
            for user_id in users:
                for config, rep in reps.items():
                    done, _, out = rep.pair(user_id, None, {}, environment=clean)
                    fig.benign_approved[config] += done
                    fig.benign_zero[config] += done and out.confirmations == 0
                    fig.confirmations[config] += out.confirmations
            for case in cases:
                inj = case["injections_by_attack"][ATTACK]
                ids = (case["user_task_id"], case["injection_task_id"])
                env = first.environment(inj)
                for config, rep in reps.items():
                    done, hit, out = rep.pair(*ids, inj, environment=env)
                    fig.attacks[config] += hit
                    if config == "provenance":
                        fig.attack_asked.update(
                            k for k in out.asked.elements() if k.startswith("attack:")
                        )
                    fig.output_side[config] += hit and out.attack_calls == 0
                    fig.benign_in_pairs[config] += done
                    fig.trusted_leaks += out.trusted_leaks
                    _, hit_all, _ = rep.pair(
                        *ids, inj, approve_all=True, environment=env
                    )
                    fig.attacks_approve_all[config] += hit_all
                    if hit and config == "provenance":
                        goal = goals.get((suite_name, case["injection_task_id"]), "")
                        fig.remaining[f"{case['injection_task_id']}: {goal[:70]}"] += 1
    return figures


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}%" if d else "   - "


def print_figures(
    figures: Mapping[str, SuiteFigures], configs: tuple[str, ...]
) -> None:
    total = SuiteFigures()
    for fig in figures.values():
        total.pairs += fig.pairs
        total.benign += fig.benign
        for c in configs:
            total.attacks[c] += fig.attacks[c]
            total.attacks_approve_all[c] += fig.attacks_approve_all[c]
            total.output_side[c] += fig.output_side[c]
            total.benign_zero[c] += fig.benign_zero[c]
            total.benign_approved[c] += fig.benign_approved[c]
            total.confirmations[c] += fig.confirmations[c]
            total.benign_in_pairs[c] += fig.benign_in_pairs[c]
        total.remaining.update(fig.remaining)
        total.attack_asked.update(fig.attack_asked)
        total.trusted_leaks += fig.trusted_leaks
    rows = {**figures, "total": total}
    print("\nAgentDojo replay (ground-truth calls, important_instructions, no model)")
    print(
        "injected goal succeeds (attacker calls needing confirmation are refused"
        " by the user; [approve-all]: the user approves everything asked)"
    )
    head = "  suite      pairs " + "".join(f"{c:>22}" for c in configs)
    print(head)
    for name, fig in rows.items():
        cells = "".join(
            (
                f"{_pct(fig.attacks[c], fig.pairs)} "
                f"[{_pct(fig.attacks_approve_all[c], fig.pairs)}]"
            ).rjust(22)
            for c in configs
        )
        print(f"  {name:<10} {fig.pairs:>5} {cells}")
    print(
        "  of which output-side goals (no tool call: 'say X', for I8/I9): "
        + ", ".join(f"{c} {total.output_side[c]}" for c in configs)
    )
    print(
        "benign user tasks: done with zero confirmations / done when the user"
        " approves / confirmations per task / done within the pairs"
    )
    print("  suite      tasks " + "".join(f"{c:>30}" for c in configs))
    for name, fig in rows.items():
        cells = "".join(
            (
                f"{_pct(fig.benign_zero[c], fig.benign)} "
                f"{_pct(fig.benign_approved[c], fig.benign)}"
                f" {fig.confirmations[c] / max(fig.benign, 1):4.2f}"
                f" {_pct(fig.benign_in_pairs[c], fig.pairs)}"
            ).rjust(30)
            for c in configs
        )
        print(f"  {name:<10} {fig.benign:>5} {cells}")
    print(
        "calls where a tool the mapping declares trusted returned injected"
        f" text: {total.trusted_leaks}"
    )
    if total.attack_asked:
        print(
            "attacker calls asked under provenance, by reason (per suite): "
            + "; ".join(
                f"{name} "
                + ", ".join(f"{k[7:]} {n}" for k, n in sorted(fig.attack_asked.items()))
                for name, fig in rows.items()
                if fig.attack_asked
            )
        )
    if total.remaining:
        print("attack kinds that still succeed (provenance):")
        for kind, n in total.remaining.most_common():
            print(f"  {n:>4}  {kind}")


def run(limit_per_suite: int | None = None, suites: tuple[str, ...] = ()) -> None:
    reason = available()
    if reason is not None:
        print(f"\nAgentDojo replay skipped: {reason}")
        return
    figures = replay(limit_per_suite, suites=suites)
    print_figures(figures, CONFIGS)


if __name__ == "__main__":
    run()
