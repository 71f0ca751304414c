//! Real Ceph answers (filled in once captured).
