"""Public schemas of the compliance review API: clips, verdicts, holds, the audit log and statistics."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from edge.api.review_names import ReviewNames
from edge.counter.stats import GroupStats, StatsReport
from edge.review.store import MAX_NOTES
from edge.review.types import AuditEntry, Clip, Verdict, VerdictValue


class VerdictCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: VerdictValue = Field(description="compliant, violation or needs_follow_up.")
    notes: str = Field(default="", max_length=MAX_NOTES, description="The reviewer's reasons (at most 2000 "
                                                                     "characters).")


class VerdictPublic(BaseModel):
    id: int = Field(description="Verdict id; a later verdict of the same clip has a larger id.")
    clip_id: str = Field(description="The clip judged.")
    verdict: str = Field(description="compliant, violation or needs_follow_up.")
    notes: str = Field(description="The reviewer's reasons.")
    by: str = Field(description="Name of the reviewer's token.")
    at: datetime = Field(description="When it was recorded (UTC).")

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictPublic:
        return cls(id=verdict.id, clip_id=verdict.clip_id, verdict=verdict.verdict, notes=verdict.notes,
                   by=verdict.by, at=verdict.at)


class HoldUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold: bool = Field(description="True puts the clip on review hold (retention keeps it); false releases it.")


class ParticipantsPublic(BaseModel):
    interaction_id: str = Field(description="The service interaction the clip records.")
    staff_track: int = Field(description="Track id of the staff member on the camera.")
    customer_track: int = Field(description="Track id of the customer on the camera.")
    staff_id: str | None = Field(description="Recognised staff person id; null: unidentified staff (staff zone).")
    vip_id: str | None = Field(description="The customer's VIP id, if an enrolled VIP.")
    staff_name: str | None = Field(default=None, description="The staff member's enrolled name; null: "
                                                             "unidentified, or no longer enrolled.")
    vip_name: str | None = Field(default=None, description="The VIP customer's enrolled name; null: not a VIP, or "
                                                           "no longer enrolled (a customer known by its track).")


class ClipPublic(BaseModel):
    id: str = Field(description="Clip id.")
    camera_id: str = Field(description="Counter camera that recorded it.")
    camera_name: str = Field(description="The camera's configured name, else its id.")
    participants: ParticipantsPublic = Field(description="Who the clip is about.")
    started_at: datetime = Field(description="Capture time of the first frame, pre-roll included (UTC).")
    ended_at: datetime = Field(description="Capture time of the last frame, post-roll included (UTC).")
    duration_s: float = Field(description="Length in seconds.")
    frames: int = Field(description="Frames in the file.")
    sha256: str = Field(description="sha256 hex of the whole MP4 file, as written.")
    size_bytes: int = Field(description="File size in bytes, as written.")
    hold: bool = Field(description="On review hold: retention keeps it.")
    expired: bool = Field(description="Retention deleted the file; the row stays for the audit trail.")
    expired_at: datetime | None = Field(description="When retention deleted the file (UTC).")
    verdict: VerdictPublic | None = Field(description="The current (latest) verdict; null: not judged yet.")
    video_url: str | None = Field(description="The MP4 (H.264), with HTTP Range support; needs a compliance "
                                               "token. Null once expired.")

    @classmethod
    def of(cls, clip: Clip, names: ReviewNames) -> ClipPublic:
        p = clip.participants
        named = names.of(camera_id=p.camera_id, staff_id=p.staff_id, vip_id=p.vip_id)
        return cls(id=clip.id, camera_id=p.camera_id, camera_name=named.camera_name,
                   participants=ParticipantsPublic(interaction_id=p.interaction_id, staff_track=p.staff_track,
                                                   customer_track=p.customer_track, staff_id=p.staff_id,
                                                   vip_id=p.vip_id, staff_name=named.staff_name,
                                                   vip_name=named.vip_name),
                   started_at=clip.started_at, ended_at=clip.ended_at, duration_s=clip.duration_s,
                   frames=clip.frames, sha256=clip.sha256, size_bytes=clip.size_bytes, hold=clip.hold,
                   expired=clip.expired, expired_at=clip.expired_at,
                   verdict=None if clip.verdict is None else VerdictPublic.of(clip.verdict),
                   video_url=None if clip.expired else f"/api/clips/{clip.id}/video")


class AuditPublic(BaseModel):
    id: int = Field(description="Audit row id, increasing.")
    at: datetime = Field(description="When (UTC).")
    actor: str = Field(description="Token name, 'anonymous' without a valid token, or 'retention'.")
    action: str = Field(description="list, view, play, verdict, hold, release, expire, audit_list or stats.")
    clip_id: str | None = Field(description="The clip concerned, if any.")
    outcome: str = Field(description="ok, refused, not_found, gone, conflict or unsatisfiable.")
    detail: str = Field(description="Byte range played, verdict given, reason refused, file deleted, …")

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditPublic:
        return cls(id=entry.id, at=entry.at, actor=entry.actor, action=entry.action, clip_id=entry.clip_id,
                   outcome=entry.outcome, detail=entry.detail)


class _Numbers(BaseModel):
    interactions: int = Field(description="Interactions that started in the group.")
    median_service_s: float | None = Field(description="Median service time (s) of the ended ones; null: none "
                                                       "ended.")
    median_wait_s: float | None = Field(description="Median wait before service (s) of customers who waited; "
                                                    "null: nobody waited.")
    ongoing: int = Field(description="Of the interactions, those still going on.")
    interrupted: int = Field(description="Of the interactions, those cut short by a stop of the service (closed "
                                         "at its next start); left out of the median service time.")


def _numbers(stats: GroupStats) -> dict[str, float | int | None]:
    return {"interactions": stats.interactions, "median_service_s": stats.median_service_s,
            "median_wait_s": stats.median_wait_s, "ongoing": stats.ongoing, "interrupted": stats.interrupted}


class StaffHourPublic(_Numbers):
    staff_id: str | None = Field(description="Staff person id; null: unidentified staff.")
    hour: datetime = Field(description="Start of the branch-local hour, with the branch's UTC offset.")


class HourPublic(_Numbers):
    hour: datetime = Field(description="Start of the branch-local hour, with the branch's UTC offset.")
    unattended: int = Field(description="Customers flagged as left waiting unattended in this hour.")


class StaffTotalPublic(_Numbers):
    staff_id: str | None = Field(description="Staff person id; null: unidentified staff.")


class StatsPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", description="Range start, inclusive (branch-local time).")
    to: datetime = Field(description="Range end, exclusive (branch-local time).")
    timezone: str = Field(description="IANA zone of the branch, used for the hour buckets.")
    camera_id: str | None = Field(description="Camera filter, if any.")
    by_staff_hour: list[StaffHourPublic] = Field(description="Per staff and hour; only groups with interactions.")
    by_hour: list[HourPublic] = Field(description="Per hour with an interaction or an unattended event.")
    by_staff: list[StaffTotalPublic] = Field(description="Per staff over the whole range.")

    @classmethod
    def of(cls, report: StatsReport, *, start: datetime, end: datetime, timezone: str,
           camera_id: str | None) -> StatsPublic:
        return cls.model_validate({
            "from": start, "to": end, "timezone": timezone, "camera_id": camera_id,
            "by_staff_hour": [{"staff_id": r.staff_id, "hour": r.hour, **_numbers(r.stats)}
                              for r in report.by_staff_hour],
            "by_hour": [{"hour": r.hour, "unattended": r.unattended, **_numbers(r.stats)} for r in report.by_hour],
            "by_staff": [{"staff_id": r.staff_id, **_numbers(r.stats)} for r in report.by_staff],
        })
