"""The paper trail: an append-only transparency log of issued report envelopes (RFC 6962
Merkle tree through pymerkle), with signed checkpoints in the C2SP tlog-checkpoint /
signed-note formats. Reads signed reports only; never imports probes."""
