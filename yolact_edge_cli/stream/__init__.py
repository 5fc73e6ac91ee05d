"""Running a model over many inputs, for every command that streams (docs/architecture.md,
"Streaming"): `items` (what goes in and comes out), `stages` (decode + preprocess, a batch through
a session, the host part), `schedule` (which replica runs which source), the engines `local` and
`ray_engine` (with `ray_cluster`, what Ray is asked for), and `engine` (their protocol and the
factory that picks one). The modules import down that list, never up it."""
