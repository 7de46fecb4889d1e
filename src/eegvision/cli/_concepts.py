"""Which concept each test-embedding row is, for ``reconstruct`` and ``caption``: the run's recorded table, or
``--concepts`` (a table file, a feature file that records one, or the data folder)."""

from __future__ import annotations

from pathlib import Path

from eegvision.store.concepts import ConceptTable

#: Help of the ``--concepts`` option shared by the commands.
CONCEPTS_HELP = ("Concept of each embedding row: a table (.tsv/.csv/.json with concept_index, 0-based, and "
                 "concept), a feature file that records one, or the store/THINGS-EEG2 folder (its test split). "
                 "Default: the table the run recorded.")
_HOW = ("pass --concepts with the table of its test split: the store or THINGS-EEG2 folder, a feature file made by "
        "`eegvision features`, or a .tsv with columns concept_index (0-based) and concept")


def read_concepts_option(path: Path, split: str = "test") -> ConceptTable:
    """The table named by ``--concepts``: a data folder (its ``split``), a feature file or a table file."""
    if path.is_dir():
        from eegvision.data.sources import open_data

        return open_data(path).concept_table(split)
    if path.suffix.lower() == ".safetensors":
        from eegvision.features.files import load_features

        table = load_features(path, tokens=True).concepts
        if table is None:
            raise ValueError(f"Feature file {path} records no concept table (written by eegvision 0.1.0, or "
                             f"imported without one); give the store or THINGS-EEG2 folder, or a .tsv with columns "
                             "concept_index (0-based) and concept, instead.")
        return table
    return ConceptTable.read(path, split=split)


def run_concepts(run: Path) -> ConceptTable:
    """The test concept table a run recorded.

    A run of eegvision 0.1.0 records none: its data's table is used when the data can still be opened
    (the store defines the table); otherwise the message says what to pass.
    """
    from eegvision.training.rundir import RunFolder

    folder = RunFolder(run)
    config = folder.read_config() if folder.config_path.is_file() else {}
    recorded = folder.concepts("test") if config else None
    if recorded is not None:
        return recorded
    data = config.get("fit", {}).get("data")
    if data:
        from eegvision.data.sources import open_data

        try:
            return open_data(data).concept_table("test")
        except (FileNotFoundError, ValueError) as exc:
            why = f"its data {data} cannot be read ({str(exc).splitlines()[0]})"
    else:
        why = "it names no data"
    raise ValueError(f"Run {run} records no test concept table (written by eegvision "
                     f"{config.get('eegvision_version', '0.1.0')}) and {why}: {_HOW}, or fit the run again with "
                     "this eegvision.")


def embedding_concepts(source: Path, n_rows: int, given: Path | None) -> ConceptTable:
    """The concept table of the ``n_rows`` test embeddings read from ``source`` (a run or an embedding file)."""
    if given is not None:
        table, where = read_concepts_option(given), f"--concepts {given}"
    elif source.is_dir():
        table, where = run_concepts(source), f"the table run {source} recorded"
    else:
        raise ValueError(f"{source} holds embeddings only, without the concept of each row; {_HOW}.")
    if len(table) != n_rows:
        raise ValueError(f"{where} lists {len(table)} concepts but {source} has {n_rows} embedding rows; give the table "
                         "of the split the embeddings come from (one concept per row: a split whose conditions are "
                         "each their own concept, as the test sets).")
    return table
