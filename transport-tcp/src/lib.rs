//! TCP transport for rpc: framed bincode, the seed's text commands, and a pool over many consumers. Built in its own issue.
