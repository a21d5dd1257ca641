"""The Faust streaming app: fingerprint, segment, drift, retrain trigger and metrics sink agents.

``streams.build.build_app(StreamsConfig(...)).run()`` runs one worker; ``driftscope worker`` does
that from the settings. The processing steps (``streams.fingerprint``, ``streams.segment``,
``streams.driftwatch``, ``streams.retrain``, ``streams.sink``) are plain classes usable without
Kafka. This package module imports nothing, so ``streams.drift`` stays importable without Faust.
"""
