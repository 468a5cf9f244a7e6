"""The alert envelope pushed to terminals and stored at the edge."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class AlertType(StrEnum):
    VIP_ARRIVAL = "vip_arrival"
    VIP_VEHICLE_ARRIVAL = "vip_vehicle_arrival"
    INTERACTION_STARTED = "interaction_started"
    INTERACTION_ENDED = "interaction_ended"
    CUSTOMER_UNATTENDED = "customer_unattended"
    COUNTER_UNSTAFFED = "counter_unstaffed"


class VipArrivalPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["vip_arrival"] = Field(default="vip_arrival", description="Payload discriminator.")
    person_id: str = Field(description="Enrolled person id.")
    name: str = Field(description="Display name of the VIP.")
    tier: str = Field(description="VIP tier, e.g. 钻石 / 白金 / 金卡.")
    photo_url: str = Field(description="URL of the enrolment photo, relative to the edge box.")
    score: float = Field(description="Best cosine similarity of the deciding track.")
    margin: float = Field(description="Margin over the runner-up person.")
    votes: int = Field(description="Observations that voted for this person.")
    track_id: int = Field(description="Face track on the camera.")
    camera_name: str = Field(description="Human name of the camera.")
    first_seen_at: datetime = Field(description="Capture time (UTC) of the track's first frame.")


class DriverFace(BaseModel):
    """The face engine's view of the driver on the frame that decided the plate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confirmed: bool = Field(description="A face on the frame matched the plate's owner.")
    score: float | None = Field(default=None, description="Best similarity of a face to the plate's owner.")
    faces: int = Field(default=0, ge=0, description="Faces found on the frame.")


class VipVehicleArrivalPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["vip_vehicle_arrival"] = Field(default="vip_vehicle_arrival", description="Payload discriminator.")
    person_id: str = Field(description="Enrolled person who registered the plate.")
    name: str = Field(description="Display name of the VIP.")
    tier: str = Field(description="VIP tier, e.g. 钻石 / 白金 / 金卡.")
    photo_url: str = Field(description="URL of the enrolment photo, relative to the edge box.")
    plate: str = Field(description="The registered plate, normalised (e.g. 皖A12345).")
    plate_read: str = Field(description="What the camera read (may differ by one confusable character).")
    plate_color: str | None = Field(default=None, description="Plate colour seen: blue, yellow, green, white, black.")
    distance: float = Field(ge=0, description="Confusion-aware edit distance between read and registered plate.")
    score: float = Field(description="Voted read confidence in [0, 1].")
    reads: int = Field(ge=0, description="Frames whose reads were voted.")
    track_id: int = Field(description="Plate track on the camera.")
    camera_name: str = Field(description="Human name of the camera.")
    first_seen_at: datetime = Field(description="Capture time (UTC) of the track's first read.")
    driver_face: DriverFace | None = Field(default=None,
                                           description="Driver-face check on the deciding frame; None if not run.")


class InteractionPayload(BaseModel):
    """A staff-customer service on a counter camera: its start, or its end with the duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["interaction_started", "interaction_ended"] = Field(description="Payload discriminator.")
    interaction_id: str = Field(description="Id of the service episode (its clip carries the same id).")
    camera_name: str = Field(description="Human name of the camera.")
    staff_id: str | None = Field(default=None, description="Enrolled staff member; None: staff by the staff zone.")
    staff_name: str | None = Field(default=None, description="Staff member's name, when identified.")
    staff_track: int = Field(description="Person track of the staff member on the camera.")
    customer_track: int = Field(description="Person track of the customer on the camera.")
    vip_id: str | None = Field(default=None, description="The customer's VIP id, when the customer is a VIP.")
    vip_name: str | None = Field(default=None, description="The VIP's name.")
    vip_tier: str | None = Field(default=None, description="The VIP's tier.")
    started_at: datetime = Field(description="When the two became near (UTC).")
    ended_at: datetime | None = Field(default=None, description="Last moment they were near (UTC); None at start.")
    duration_s: float | None = Field(default=None, ge=0, description="Service time in seconds; None at start.")
    wait_s: float | None = Field(default=None, ge=0,
                                 description="How long the customer waited in a waiting zone before service.")
    closes: list[str] = Field(default_factory=list, max_length=16,
                              description="interaction_started only: ids of the 「无人接待」 alerts this service "
                                          "answers. A terminal closes those cards, showing who served and when; "
                                          "the message is stored and replayed like any alert, so a reloaded "
                                          "tablet closes them too.")


class CustomerUnattendedPayload(BaseModel):
    """A customer left waiting with nobody attending; escalated when the customer is a VIP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["customer_unattended"] = Field(default="customer_unattended", description="Payload discriminator.")
    camera_name: str = Field(description="Human name of the camera.")
    zone: str = Field(description="Waiting zone the customer is in.")
    customer_track: int = Field(description="Person track of the customer on the camera.")
    waited_s: float = Field(ge=0, description="Seconds waited without an interaction.")
    waiting_since: datetime = Field(description="When the wait began (UTC).")
    crop_url: str | None = Field(default=None, description="Snapshot of the customer (needs a token).")
    escalated: bool = Field(default=False, description="True for a VIP: show prominently.")
    person_id: str | None = Field(default=None, description="VIP id, when the customer is a VIP.")
    name: str | None = Field(default=None, description="VIP name.")
    tier: str | None = Field(default=None, description="VIP tier.")
    photo_url: str | None = Field(default=None, description="VIP enrolment photo.")


class CounterUnstaffedPayload(BaseModel):
    """A counter position with no staff for too long during opening hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["counter_unstaffed"] = Field(default="counter_unstaffed", description="Payload discriminator.")
    camera_name: str = Field(description="Human name of the camera.")
    zone: str = Field(description="Counter zone without staff.")
    unstaffed_s: float = Field(ge=0, description="Seconds without staff in the zone.")
    unstaffed_since: datetime = Field(description="When staff were last seen there (UTC).")


AlertPayload = Annotated[VipArrivalPayload | VipVehicleArrivalPayload | InteractionPayload
                         | CustomerUnattendedPayload | CounterUnstaffedPayload, Field(discriminator="kind")]


class AlertDraft(BaseModel):
    """What a rule produces; the log assigns id and seq."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: AlertType = Field(description="Alert type.")
    branch_id: str = Field(description="Branch the edge box serves.")
    camera_id: str = Field(description="Camera that saw the event.")
    person_id: str | None = Field(default=None, description="Person the alert is about, if any.")
    title: str = Field(description="Short zh-CN title shown on the card, e.g. 「VIP 到店」.")
    captured_at: datetime = Field(description="Capture time (UTC) of the frame that decided the alert.")
    payload: AlertPayload = Field(description="Type-specific content, discriminated by ``kind``.")


class Alert(AlertDraft):
    id: str = Field(description="Unique alert id (uuid4 hex).")
    seq: int = Field(ge=1, description="Per-branch monotonic sequence number.")
    created_at: datetime = Field(description="When the alert was stored (UTC).")
    acked_at: datetime | None = Field(default=None, description="When a terminal acknowledged it.")
    acked_by: str | None = Field(default=None, description="Who acknowledged it.")


class AckEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    seq: int
    acked_at: datetime
    acked_by: str


class HubMessage(BaseModel):
    """One message on the terminal WebSocket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["alert", "ack", "hello", "ping"]
    alert: Alert | None = None
    ack: AckEvent | None = None
    last_seq: int | None = None
    epoch: str | None = Field(default=None, description="The alert log's epoch (the store's id); seqs compare "
                                                        "only within one epoch.")
    reset: bool | None = Field(default=None, description="hello only: the terminal's cursor was of another epoch "
                                                         "or ahead of the log, so the replay starts from the "
                                                         "beginning and the terminal drops what it shows.")
    replace: bool | None = Field(default=None,
                                 description="alert only: the alert as it is now (an erasure scrubbed it), sent again; "
                                             "a terminal that shows it replaces what it shows.")
    heartbeat_s: float | None = Field(default=None, gt=0,
                                      description="hello only: the server pings this often; a terminal that "
                                                  "hears nothing for a few intervals treats the link as dead.")
    missed: int | None = Field(default=None, ge=0,
                               description="hello only: how many older alerts the terminal missed beyond the replay "
                                           "limit; they are not replayed (the newest are), so the page says so.")


class AlertLog(Protocol):
    """Persistent, ordered alert storage. Implemented by the edge store."""

    @property
    def epoch(self) -> str:
        """The log's identity, made once with its database; a new database is a new epoch."""
        ...

    def append(self, draft: AlertDraft) -> Alert: ...

    def since(self, seq: int, limit: int = 500) -> list[Alert]: ...

    def ack(self, alert_id: str, by: str) -> Alert | None: ...

    def last_seq(self) -> int: ...
