"""What the parent and the worker processes send each other: small picklable records."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeriesInfo:
    """One series of an input, as planning found it (full resolution)."""

    index: int
    kind: str
    size_y: int
    size_x: int
    size_z: int
    size_c: int
    size_t: int
    dtype: str

    @property
    def planes(self) -> int:
        return self.size_z * self.size_c * self.size_t


@dataclass(frozen=True)
class InputPlan:
    """What planning learnt about one input, or why it cannot be read."""

    path: str
    series: tuple[SeriesInfo, ...] = ()
    error: str | None = None
    detail: str | None = None

    @property
    def images(self) -> tuple[SeriesInfo, ...]:
        """The series to convert: thumbnails, labels and macro images are left out."""
        return tuple(s for s in self.series if s.kind == "image")

    @property
    def ancillary(self) -> tuple[SeriesInfo, ...]:
        return tuple(s for s in self.series if s.kind != "image")


@dataclass(frozen=True)
class Output:
    """One output file: a plane (``z, c, t`` set) or a whole series (``z, c, t`` None)."""

    name: str
    series: int
    z: int | None
    c: int | None
    t: int | None
    planes: int = 1


@dataclass(frozen=True)
class ConvertJob:
    """Convert some outputs of one input (those not already complete)."""

    path: str
    out_dir: str
    outputs: tuple[Output, ...]
    expected: tuple[SeriesInfo, ...] = ()

    @property
    def planes(self) -> int:
        return sum(o.planes for o in self.outputs)


@dataclass
class ConvertResult:
    """Which outputs of a job were written, and the reason it stopped if it failed."""

    path: str
    written: list[str] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class PlanConvertJob:
    """Plan one input and convert its outputs at once, with the reader planning opened.

    Only when no two inputs of the collection can make the same output (their names alone
    tell), so that nothing has to wait for the whole collection's plan.
    """

    path: str
    out_dir: str
    ext: str
    layout: str
    overwrite: bool


@dataclass
class PlanConvertResult:
    """The input's plan, what converting it did (None: nothing to do), and the names of its
    outputs that were already complete."""

    plan: InputPlan
    result: ConvertResult | None = None
    complete: tuple[str, ...] = ()
    outputs: int = 0  # outputs it set out to write
