"""Loyalty: per-customer aggregates of purchases and returns, and an RFM score on them.

- contributions.py: what one purchase or return adds (read from the interaction), in parts;
- habits.py: the per-SKU buying habits;
- aggregates.py: the aggregates and `apply`, which keeps them exactly under any order of changes;
- config.py: the RFM bands and tier thresholds (from the environment);
- scoring.py: the score, the tier and when the tier changes by time alone.

All pure: the stream consumer (services/loyalty.py) owns storage and the guards."""
