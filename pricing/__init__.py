"""gpuplan's price layer: cloud offers, live refresh, local cost of ownership. A leaf package.

- catalog.load_offers(...) -> OfferSet: bundled snapshot + ~/.sky catalog cache + live cache, newest wins
- snapshot: the offers file format and `build_snapshot` (from SkyPilot-format catalogs)
- skypilot_csv / validate: catalog readers (all schemas) and the validation every source goes through
- refresh: live AWS (Price List + EC2 spot) and GCP (Cloud Billing + Compute) fetchers
- local: cost of ownership of local GPUs; spot: preemption overhead model; gpus: canonical names and aliases
"""
