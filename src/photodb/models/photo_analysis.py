"""The structured answer an LLM gives for one photo (the spec's PhotoAnalysisResponse).

The JSON schema of these models is sent to the provider as the required output format, and every
reply is validated against them before anything is stored: a reply that does not fit is that
photo's failure, never a partial row.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Season(StrEnum):
    SPRING = "spring"
    SUMMER = "summer"
    AUTUMN = "autumn"
    WINTER = "winter"
    UNKNOWN = "unknown"


class TimeOfDay(StrEnum):
    DAWN = "dawn"
    MORNING = "morning"
    MIDDAY = "midday"
    AFTERNOON = "afternoon"
    EVENING = "evening"
    NIGHT = "night"
    UNKNOWN = "unknown"


class Environment(StrEnum):
    INDOOR = "indoor"
    OUTDOOR = "outdoor"
    MIXED = "mixed"
    UNKNOWN = "unknown"


class EmotionalTone(StrEnum):
    JOYFUL = "joyful"
    CALM = "calm"
    NEUTRAL = "neutral"
    SOMBER = "somber"
    TENSE = "tense"
    FESTIVE = "festive"
    ROMANTIC = "romantic"
    NOSTALGIC = "nostalgic"
    PLAYFUL = "playful"


class QualityAssessment(_Strict):
    score: float = Field(ge=0, le=1, description="Technical quality from 0 (unusable) to 1 (excellent).")
    notes: list[str] = Field(
        default_factory=list, max_length=10, description="Short remarks: blur, noise, exposure, framing."
    )


class TimeAssessment(_Strict):
    season: Season = Field(description="Season suggested by the scene; 'unknown' when nothing shows it.")
    time_of_day: TimeOfDay = Field(description="Time of day suggested by the light; 'unknown' when unclear.")
    date_estimate: str | None = Field(
        default=None,
        max_length=100,
        description="Free-text estimate of when the photo was taken (e.g. 'late 1990s'), only when the "
        "capture date is not given in the context.",
    )
    confidence: float = Field(ge=0, le=1, description="How sure the time estimates are.")


class LocationHypothesis(_Strict):
    place: str = Field(min_length=1, max_length=200, description="A place the photo may show.")
    confidence: float = Field(ge=0, le=1, description="How likely this place is.")


class LocationAssessment(_Strict):
    environment: Environment = Field(description="Whether the photo was taken indoors or outdoors.")
    description: str = Field(max_length=300, description="The kind of place, in a few words (e.g. 'alpine lake').")
    hypotheses: list[LocationHypothesis] = Field(
        default_factory=list, max_length=5, description="Specific places it may be, most likely first."
    )


class FaceInfo(_Strict):
    name: str | None = Field(
        default=None, max_length=200, description="A name from the context's known persons, only when certain."
    )
    apparent_age: str | None = Field(default=None, max_length=50, description="e.g. 'child', 'about 30'.")
    expression: str | None = Field(default=None, max_length=100, description="e.g. 'smiling', 'serious'.")
    position: str | None = Field(default=None, max_length=100, description="Where in the frame, e.g. 'left'.")


class PeopleAssessment(_Strict):
    count: int = Field(ge=0, description="How many people are visible, including partly visible ones.")
    faces: list[FaceInfo] = Field(default_factory=list, max_length=50, description="One entry per visible face.")
    description: str | None = Field(default=None, max_length=500, description="Who is there and what they do.")


class ActivitiesAssessment(_Strict):
    primary: str | None = Field(default=None, max_length=200, description="The main activity, if any.")
    secondary: list[str] = Field(default_factory=list, max_length=10, description="Other activities seen.")
    event_type: str | None = Field(
        default=None, max_length=100, description="The occasion, e.g. 'wedding', 'birthday', 'hike'."
    )


class DetectedObject(_Strict):
    name: str = Field(min_length=1, max_length=100, description="What the object is, lower case, singular.")
    confidence: float = Field(ge=0, le=1, description="How sure the identification is.")
    count: int = Field(default=1, ge=1, description="How many of it are visible.")


class TextBlock(_Strict):
    text: str = Field(min_length=1, max_length=1000, description="The text as it reads in the image.")
    kind: str | None = Field(default=None, max_length=50, description="e.g. 'sign', 'caption', 'document'.")
    language: str | None = Field(default=None, max_length=20, description="ISO 639-1 code when known.")


class PhotoAnalysisResponse(_Strict):
    """Everything the model says about one photo."""

    description: str = Field(min_length=1, max_length=2000, description="A 2-4 sentence summary of the photo.")
    quality: QualityAssessment
    time: TimeAssessment
    location: LocationAssessment
    people: PeopleAssessment
    activities: ActivitiesAssessment
    objects: list[DetectedObject] = Field(default_factory=list, max_length=50, description="Notable objects.")
    text_in_image: list[TextBlock] = Field(default_factory=list, max_length=20, description="Legible text.")
    tags: list[str] = Field(default_factory=list, max_length=30, description="Search keywords, lower case.")
    emotional_tone: EmotionalTone = Field(description="The overall mood of the photo.")
    confidence: float = Field(ge=0, le=1, description="How sure the analysis is as a whole.")
