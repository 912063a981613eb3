"""What handoff notices say (docs/on-call.md#handoff-notices): an email with the schedule
and every time in the schedule's own zone, a one-segment SMS, an ntfy push. Written when
the notice is recorded and sent as it is (oncall/sending.py)."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from oncall.messages import (
    SMS_SEGMENT_CHARS,
    Message,
    clip,
    clip_gsm7,
    display_name,
    gsm7,
    gsm7_length,
    one_line,
)

PUSH_TITLE_CHARS = 200


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str  # the email's body
    sms: str
    push_title: str
    push_text: str

    def for_kind(self, kind: str) -> Message:
        if kind == "sms":
            return Message("", self.sms)
        if kind == "ntfy":
            return Message(clip(self.push_title, PUSH_TITLE_CHARS), self.push_text)
        return Message(self.subject, self.text)


def name(user) -> str:
    return display_name(user) if user is not None else "someone"


def when(instant: datetime, zone: ZoneInfo, *, year: bool = True) -> str:
    """"Mon 14 Dec 2026, 09:00 CET" in the schedule's zone."""
    local = instant.astimezone(zone)
    return local.strftime("%a %d %b %Y, %H:%M %Z" if year else "%a %d %b %H:%M %Z")


def sms_text(text: str) -> str:
    """One GSM-7 segment: the text cut to fit, with "..." where it was cut."""
    text = gsm7(one_line(text))
    return text if gsm7_length(text) <= SMS_SEGMENT_CHARS else clip_gsm7(text, SMS_SEGMENT_CHARS)


def shift_notice(schedule, user, start: datetime, end: datetime, *, open_ended: bool,
                 taking_over_from: list, by_override: bool) -> Notice:
    """Shortly before a shift starts."""
    zone = ZoneInfo(schedule.time_zone)
    until = (f"for more than {(end - start).days} days" if open_ended
             else f"until {when(end, zone)}")
    until_short = "" if open_ended else f" until {when(end, zone, year=False)}"
    handover = (f"Taking over from: {', '.join(name(other) for other in taking_over_from)}."
                if taking_over_from else "")
    how = "an override puts you on call. " if by_override else ""
    lines = [
        f"Hello {name(user)},",
        "",
        f"You are on call for the schedule “{schedule.name}” (team {schedule.team.name}):",
        "",
        f"  from  {when(start, zone)}",
        f"  {until}",
        "",
        f"Times are in {schedule.time_zone}. {how.capitalize()}{handover}".rstrip(),
        "",
        "Pages reach you through your contact methods and notification rules: check them "
        "(and send yourself a test) on your profile page in Tocsin.",
    ]
    return Notice(
        subject=one_line(f"[Tocsin] On call for {schedule.name} from "
                         f"{when(start, zone, year=False)}")[:255],
        text="\n".join(lines) + "\n",
        sms=sms_text(f"Tocsin: you are on call for {schedule.name} from "
                     f"{when(start, zone, year=False)}{until_short}."),
        push_title=one_line(f"On call soon: {schedule.name}"),
        push_text=one_line(f"From {when(start, zone)} {until}. {handover}"),
    )


def describe(state, users, zone: ZoneInfo, *, year: bool = True) -> str:
    """"olga is on call from … until … in place of rita"."""
    instead = (f"in place of {name(users.get(state.replaces_id))}" if state.replaces_id
               else "in place of everyone the rotations have on call")
    return (f"{name(users.get(state.user_id))} is on call from {when(state.start, zone, year=year)}"
            f" until {when(state.end, zone, year=year)} {instead}")


def sms_outcome(own_shifts: list, shown: tuple, zone: ZoneInfo) -> str:
    """"you are on call Sat 12 Dec 00:00 CET-Mon 14 Dec 00:00 CET", or not, in short."""
    if not own_shifts:
        start, end = shown
        return (f"you are not on call {when(start, zone, year=False)}-"
                f"{when(end, zone, year=False)}")
    spans = [f"{when(shift.start, zone, year=False)}-{when(shift.end, zone, year=False)}"
             for shift in own_shifts[:2]]
    more = " and later" if len(own_shifts) > 2 else ""
    return "you are on call " + "; ".join(spans) + more


def override_notice(schedule, user, action: str, state, before, users, *, actor,
                    own_shifts: list, shown: tuple) -> Notice:
    """An override was added, changed or removed: what it says, and the person's own
    shifts in its interval as they are now."""
    zone = ZoneInfo(schedule.time_zone)
    by = f"{name(actor)} {action}" if actor is not None else f"Someone {action}"
    change = f"{by} an override: {describe(state, users, zone)}"
    if action == "removed":
        change = f"{by} an override (it said: {describe(state, users, zone)})"
    earlier = f"Before the change: {describe(before, users, zone)}." if before else ""
    start, end = shown
    if own_shifts:
        yours = [f"Your shifts between {when(start, zone)} and {when(end, zone)} are now:"]
        yours += [f"  from {when(shift.start, zone)} until {when(shift.end, zone)}"
                  for shift in own_shifts]
    else:
        yours = [f"You are not on call between {when(start, zone)} and {when(end, zone)}."]
    lines = [
        f"Hello {name(user)},",
        "",
        f"Your on-call shifts in the schedule “{schedule.name}” changed. {change}.",
        *([earlier] if earlier else []),
        "",
        *yours,
        "",
        f"Times are in {schedule.time_zone}.",
    ]
    short_change = f"{name(actor) if actor else 'someone'} {action} an override: " + \
        describe(state, users, zone, year=False)
    return Notice(
        subject=one_line(f"[Tocsin] Your on-call shifts in {schedule.name} changed")[:255],
        text="\n".join(lines) + "\n",
        # What changes for the reader first: an SMS is cut to one segment, and "you are
        # no longer on call then" must survive the cut.
        sms=sms_text(f"Tocsin {schedule.name}: {sms_outcome(own_shifts, shown, zone)} "
                     f"({short_change})"),
        push_title=one_line(f"On-call change: {schedule.name}"),
        push_text=one_line(f"{change}. " + " ".join(line.strip() for line in yours)),
    )
