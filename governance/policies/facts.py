"""The facts each checkpoint offers to conditions (``FACTS``): for input and output, the message and what the
detectors found in it; for action, the tool call, the agent and its budget."""

_DETECTED = {
    "pii": "Counts of detected personal data by kind: map with email, phone, card, iban (ints), e.g. pii.card > 0.",
    "pii_types": "Kinds of personal data detected (list of strings), e.g. 'card' in pii_types.",
    "pii_found": "Whether any personal data was detected (bool).",
    "injection": "Whether a prompt-injection signal was detected (bool).",
    "injection_phrases": "The phrases that triggered the injection signal (list of strings).",
}
_MESSAGE_FACTS = {
    "text": "The message text (string).",
    "channel": "Where it comes from or goes to: conversation (a persona chat) or run (an agent run).",
    "persona": "Slug of the persona, or empty string when none.",
    "agent": "Slug of the agent, or empty string when none.",
    **_DETECTED,
    "length": "Length of the text in characters (int).",
}

FACTS: dict[str, dict[str, str]] = {
    "input": dict(_MESSAGE_FACTS),
    "output": dict(_MESSAGE_FACTS),
    "action": {
        "tool": "Name of the tool about to be called (string).",
        "risk": "The tool's risk level: low, medium, high or critical.",
        "side_effect": "read or write.",
        "args": "The tool call's arguments (map), e.g. args.amount; test with has(args.amount) when optional.",
        "agent": "Slug of the agent making the call.",
        "autonomy": "The agent's autonomy level: observe, propose, supervised or autonomous.",
        "budget": "Budget used so far (map): steps_used, steps_limit, tokens_used, tokens_limit, cost_used, "
        "cost_limit.",
        "pii": "Counts of personal data detected in the arguments' text, by kind: map with email, phone, card, "
        "iban (ints).",
        "pii_types": "Kinds of personal data detected in the arguments' text (list of strings).",
        "pii_found": "Whether any personal data was detected in the arguments' text (bool).",
        "injection": "Whether a prompt-injection signal was detected in the arguments' text (bool).",
        "injection_phrases": "The phrases in the arguments' text that triggered the injection signal (list).",
    },
}
