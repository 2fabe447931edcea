//! The consumer and producer applications and their workloads. Built in its own issue.
