"""GroupLens MovieLens-100K layout: `u.data` (user, item, rating, Unix time; tab-separated, no
header), `u.item` (pipe-separated, latin-1, 19 genre flags) and an optional `posters/` folder
with `<movie id>.jpg|.jpeg|.png`. Every rating is an interaction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmrec_core.data.ingest.common import (
    IngestError,
    RawDataset,
    attributes_json,
    confine,
    interaction_frame,
    outside_message,
    parse_timestamps,
    read_table,
    require_file,
    require_values,
)

GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
ITEM_COLUMNS = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES]
DATA_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def _poster(folder: Path, movie_id: str) -> Path | None | str:
    """The movie's poster, None without one, or the outside path given (a str) when it leaves `folder`."""
    for ext in ("jpg", "jpeg", "png"):
        given = f"posters/{movie_id}.{ext}"
        path = confine(folder, folder / given)
        if path is None:  # checked before existence: an outside path never reveals whether a file is there
            return given
        if path.is_file():
            return path
    return None


def read_movielens(folder: Path) -> RawDataset:
    folder = folder.resolve()  # poster paths are confined to the resolved folder
    data_file = require_file(folder, "u.data")
    item_file = require_file(folder, "u.item")
    movies = read_table(item_file, ITEM_COLUMNS, sep="|", encoding="latin-1", header=False, names=ITEM_COLUMNS)
    if movies[GENRES[-1]].fillna("").eq("").all():
        raise IngestError(
            item_file,
            f"expected {len(ITEM_COLUMNS)} pipe-separated fields per row.",
            hint="Is this the GroupLens u.item file?",
        )
    require_values(movies, item_file, ["movie_id"])
    movie_ids = movies["movie_id"].str.strip()
    posters = [_poster(folder, m) for m in movie_ids]
    refused = {
        m: outside_message(item_file, row, "movie_id", m, p, folder)
        for row, (m, p) in enumerate(zip(movie_ids, posters, strict=True), start=1)
        if isinstance(p, str)
    }
    genres = movies[GENRES].eq("1")
    genre_lists = [[g for g, on in zip(GENRES, flags, strict=True) if on] for flags in genres.to_numpy()]
    items = pd.DataFrame(
        {
            "item_id": movies["movie_id"].str.strip(),
            "title": movies["title"],
            "text": [
                f"{t}. Released {d or 'unknown'}. Genres: {', '.join(g) or 'unknown'}."
                for t, d, g in zip(movies["title"], movies["release_date"], genre_lists, strict=True)
            ],
            "category": [g[0] if g else None for g in genre_lists],
            "attributes": attributes_json(
                movies[["movie_id", "title", "release_date", "imdb_url"]].assign(genres=genre_lists)
            ),
            "image_path": [None if isinstance(p, str) else p for p in posters],
        }
    )

    ratings = read_table(data_file, DATA_COLUMNS, sep="\t", header=False, names=DATA_COLUMNS)
    if ratings["timestamp"].fillna("").eq("").all():
        raise IngestError(
            data_file,
            "expected 4 tab-separated fields per row (user, item, rating, time).",
            hint="Is the file tab-separated?",
        )
    require_values(ratings, data_file, DATA_COLUMNS)
    rating = pd.to_numeric(ratings["rating"], errors="coerce")
    if rating.isna().any():
        raise IngestError(
            data_file,
            f"rating '{ratings['rating'][rating.isna()].iloc[0]}' is not a number.",
            row=int(rating.isna().to_numpy().argmax()) + 1,
            column="rating",
        )
    return RawDataset(
        "movielens",
        folder,
        items,
        interaction_frame(
            data_file,
            ratings["user_id"].str.strip(),
            ratings["item_id"].str.strip(),
            ts=parse_timestamps(ratings["timestamp"], data_file, "timestamp"),
            rating=rating,
        ),
        items_file=item_file,
        item_column="movie_id",
        refused=refused,
    )
