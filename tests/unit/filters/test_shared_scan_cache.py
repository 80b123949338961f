"""The work the copy filters share per answer (normalized text, decoded
base64 runs) is computed once per text and never reused for another one."""

from __future__ import annotations

import base64
import threading

from aiinvariants.filters import (
    OutputPipeline,
    SecretsFilter,
    SystemPromptLeakFilter,
    ToolOutputLeakFilter,
)

PROMPT = (
    "You are the billing assistant of Example Corp. Never disclose the refund "
    "override code and always escalate chargebacks above 900 EUR to finance."
)
SECRET = "Zq9-vLm2#Rt8Kp4X"
TOOL = "customer 4411 owes 18,900 EUR since March; collections case C-77812 open"


def _pipeline() -> OutputPipeline:
    prompt = SystemPromptLeakFilter(system_prompt=PROMPT, action="redact")
    tool = ToolOutputLeakFilter(action="redact")
    tool.register(TOOL)
    return OutputPipeline(
        [prompt, tool, SecretsFilter(action="redact", registered=[SECRET])]
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _rules(pipeline: OutputPipeline, text: str) -> list[str]:
    return sorted({f.rule_id for f in pipeline.check(text).findings})


def test_each_filter_finds_its_encoded_copy_in_one_answer() -> None:
    """Three filters read the same decoded runs; each still finds its own."""
    pipeline = _pipeline()
    answer = (
        f"a: {_b64(PROMPT)}\nb: {_b64(TOOL)}\nc: {_b64('key ' + SECRET + ' end')}\n"
    )
    assert _rules(pipeline, answer) == [
        "registered-secret",
        "system-prompt-copy",
        "tool-output-copy",
    ]


def test_alternating_answers_never_share_results() -> None:
    pipeline = _pipeline()
    leaking = f"here: {_b64(PROMPT)} done"
    clean = "here: " + _b64("nothing to see in this harmless sentence at all") + " x"
    same_content = "".join(["here: ", _b64(PROMPT), " done"])  # another object
    for _ in range(3):
        assert _rules(pipeline, leaking) == ["system-prompt-copy"]
        assert _rules(pipeline, clean) == []
        assert _rules(pipeline, same_content) == ["system-prompt-copy"]


def test_threads_scanning_different_answers_agree_with_one_thread() -> None:
    pipeline = _pipeline()
    answers = [f"x {_b64(PROMPT)} y", "plain words only " * 20, f"t {_b64(TOOL)}"]
    expected = [_rules(pipeline, a) for a in answers]
    errors: list[str] = []

    def work(index: int) -> None:
        for _ in range(30):
            text = "".join([answers[index][:1], answers[index][1:]])  # new object
            if _rules(pipeline, text) != expected[index]:
                errors.append(f"answer {index}")

    threads = [threading.Thread(target=work, args=(i % 3,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert expected == [["system-prompt-copy"], [], ["tool-output-copy"]]
