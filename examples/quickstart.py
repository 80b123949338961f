"""The README's quickstart: a scope-guarded function called as two users."""

from aiinvariants import Guard, Principal, ScopeDenied, acting_as
from aiinvariants.audit import MemorySink

audit = MemorySink()
guard = Guard(sinks=[audit])  # in an app: Guard(load_policy("policy.yaml"))


@guard.enforce_user_scope("crm:read")
def read_customer(customer_id: int) -> dict[str, int]:
    return {"id": customer_id}


alice = Principal(subject="alice", authenticated=True, scopes="crm:read")
bob = Principal(subject="bob", authenticated=True, scopes="tickets:read")

with acting_as(alice):
    print(read_customer(7))  # {'id': 7}
with acting_as(bob):
    try:
        read_customer(7)
    except ScopeDenied as denied:
        print(denied.www_authenticate)  # Bearer error="insufficient_scope", ...

for event in audit.events:
    print(event.decision, event.reason, event.subject)  # allow scopes_held alice …
