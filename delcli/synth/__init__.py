"""Synthetic data with a known ground truth, for tests, benchmarks and the demo.

Two generators, each resumable and deterministic for a seed:

- features (`del data synth`): audio-visual feature streams in UnAV-100's layout,
  no video decoded — `config` (the settings), `layout` (each video's timeline),
  `signal` (the timeline made into features), `geometry` (mapped onto the released
  features' statistics), `stats` (what the dataset looks like, in numbers) and
  `features`, which writes the folder;
- videos (`del data synth-video`, the subpackage `video`): real mp4 files for the
  decode → extract → predict path and the offline demo.

Both record their settings in a manifest (`manifest`) and their ground truth in
the ActivityNet form `delcli.data.formats.database_json` writes. They sit above
`delcli.data` (they write what it reads) and below the command line.
"""
