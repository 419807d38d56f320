"""The report as a format-free document: headings, paragraphs, tables, figures and text excerpts.

``build.records_to_document`` fills one; ``render`` writes it as HTML, Markdown or LaTeX, so every
format prints the same cell texts.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str
    style: str = ""  # "", "note", "warning"


@dataclass
class Bullets:
    items: list[str]
    style: str = ""


@dataclass
class Cell:
    text: str
    best: bool = False
    bound: bool = False
    title: str = ""  # hover text (HTML only), e.g. the convention or the error
    sub: str = ""  # a second line, e.g. the change against the baseline run


@dataclass
class Row:
    cells: list[Cell]
    paradigm: str = ""
    color: str = ""
    group: str = ""  # non-empty: a group header row spanning the table (e.g. the paradigm)


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    label: str = ""
    #: how many leading columns are text (left-aligned); the rest are numbers
    text_columns: int = 1
    #: columns among the leading text ones that hold numbers all the same (right-aligned, unbroken)
    number_columns: tuple[int, ...] = ()

    def is_text(self, i: int) -> bool:
        return i < self.text_columns and i not in self.number_columns


@dataclass
class Figure:
    png: bytes
    caption: str
    alt: str
    name: str  # file stem for formats that write images beside the page
    pixelated: bool = False
    wide: bool = False  # a figure of its own width, not one of a row of sample grids


@dataclass
class Excerpt:
    caption: str
    texts: list[str]


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)
