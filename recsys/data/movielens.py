"""MovieLens-100K: the public benchmark dataset, with its item (year, genres) and user (age, gender,
occupation) attributes.

The files come from the `recbole==1.2.1` wheel on PyPI (its `recbole/dataset_example/ml-100k/` atomic files),
fetched with `pip download --no-deps` into a cache directory: PyPI is reachable wherever the requirements
install, and recbole itself is never installed. The data is cached (`<cache_dir>/ml-100k/`), never committed.

    python -m recsys.data.movielens --cache-dir data/raw                       # fetch into the cache
    python -m recsys.data.movielens --cache-dir data/raw --export-files DIR    # also write user-style files

`--export-files` writes MovieLens the way a user would bring their own data (CSV, user-facing column names,
unix seconds): interactions_trainvalid.csv (train + valid of the per-user temporal split), interactions_test.csv
(the held-out part), items.csv and users.csv, for configs/train_files.yaml.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from recsys.data.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID, VALUE, Dataset
from recsys.data.validation import validate_dataset

RECBOLE_WHEEL = "recbole==1.2.1"
_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
FILES = ("inter", "item", "user")
# The user-facing names --export-files writes (what configs/train_files.yaml maps back to the contract).
EXPORT_COLUMNS = {USER_ID: "userId", ITEM_ID: "movieId", TIMESTAMP: "ts", VALUE: "rating"}


def fetch_movielens_100k(cache_dir: str | Path = "data/raw") -> Path:
    """Directory holding ml-100k.{inter,item,user}; downloads the recbole wheel (2 MB) only if missing."""
    target = Path(cache_dir) / "ml-100k"
    if all((target / f"ml-100k.{ext}").is_file() for ext in FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               RECBOLE_WHEEL, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {RECBOLE_WHEEL} (needs access to PyPI): "
                               f"{result.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for ext in FILES:
                (target / f"ml-100k.{ext}").write_bytes(wheel.read(_MEMBER.format(ext)))
    return target


def _read_atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header `name:type`."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return df.rename(columns=lambda c: c.split(":")[0])


def read_movielens_100k(cache_dir: str | Path = "data/raw") -> Dataset:
    """The raw tables in contract column names (not yet validated)."""
    folder = fetch_movielens_100k(cache_dir)
    inter = _read_atomic(folder / "ml-100k.inter")
    interactions = pd.DataFrame({
        USER_ID: inter["user_id"], ITEM_ID: inter["item_id"],
        TIMESTAMP: pd.to_numeric(inter["timestamp"]).astype("int64"),  # unix seconds
        EVENT_TYPE: "rating", VALUE: pd.to_numeric(inter["rating"]).astype(float)})
    item = _read_atomic(folder / "ml-100k.item")
    items = pd.DataFrame({
        ITEM_ID: item["item_id"], "title": item["movie_title"],
        "year": pd.to_numeric(item["release_year"], errors="coerce"),
        "genres": item["class"].str.split().str.join("|")})  # "Animation Children's" -> "Animation|Children's"
    user = _read_atomic(folder / "ml-100k.user")
    users = pd.DataFrame({
        USER_ID: user["user_id"], "age": pd.to_numeric(user["age"]).astype(float), "gender": user["gender"],
        "occupation": user["occupation"], "zip3": user["zip_code"].str[:3]})
    return Dataset(interactions, items, users, name="movielens-100k")


def load_movielens_100k(cache_dir: str | Path = "data/raw") -> Dataset:
    """Validated MovieLens-100K: 100,000 ratings (all implicit positives, event_type "rating", the rating in
    `value`) by 943 users on 1,682 items."""
    return validate_dataset(read_movielens_100k(cache_dir))


def export_files(dataset: Dataset, out_dir: str | Path, ratios=(0.8, 0.1, 0.1)) -> dict[str, Path]:
    """Write the dataset as user files (see the module docstring); returns {name: path}."""
    from recsys.data.splits import temporal_user_split

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = temporal_user_split(dataset.interactions, ratios)

    def user_style(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[[USER_ID, ITEM_ID, TIMESTAMP, VALUE]].copy()
        frame[TIMESTAMP] = frame[TIMESTAMP].astype("int64") // 10**9
        return frame.rename(columns=EXPORT_COLUMNS)

    paths = {name: out / f"{name}.csv" for name in ("interactions_trainvalid", "interactions_test", "items", "users")}
    user_style(pd.concat([split.train, split.valid]).sort_values(TIMESTAMP, kind="stable")).to_csv(
        paths["interactions_trainvalid"], index=False)
    user_style(split.test).to_csv(paths["interactions_test"], index=False)
    dataset.items.rename(columns=EXPORT_COLUMNS).to_csv(paths["items"], index=False)
    dataset.users.rename(columns=EXPORT_COLUMNS).to_csv(paths["users"], index=False)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fetch MovieLens-100K into a cache (and export user files).")
    parser.add_argument("--cache-dir", default="data/raw")
    parser.add_argument("--export-files", metavar="DIR", help="also write the dataset as user CSV files")
    args = parser.parse_args(argv)
    dataset = load_movielens_100k(args.cache_dir)
    print(f"MovieLens-100K in {Path(args.cache_dir) / 'ml-100k'}: {len(dataset.interactions)} interactions, "
          f"{len(dataset.users)} users, {len(dataset.items)} items")
    if args.export_files:
        for name, path in export_files(dataset, args.export_files).items():
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
