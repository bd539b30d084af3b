//! The harness itself: an ephemeral cluster runs as long as its handle lives and leaves
//! nothing behind, and clusters of killed runs are swept by the next start.

use std::path::PathBuf;

use tenantry_tests::Cluster;

fn ephemeral_root() -> PathBuf {
    std::env::temp_dir().join("tenantry-pg")
}

#[test]
fn an_ephemeral_cluster_is_deleted_when_dropped() -> anyhow::Result<()> {
    let cluster = Cluster::start_ephemeral()?;
    let dir = cluster.dir().to_path_buf();
    assert!(cluster.is_running());
    assert!(dir.join("data").join("PG_VERSION").is_file());
    assert!(dir.starts_with(ephemeral_root()));
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

#[test]
fn clusters_of_dead_processes_are_swept_at_start() -> anyhow::Result<()> {
    // A directory named after a process id that cannot exist (above the kernel's pid_max).
    let stale = ephemeral_root().join("4294967-0");
    std::fs::create_dir_all(stale.join("data"))?;
    let cluster = Cluster::start_ephemeral()?;
    assert!(!stale.exists(), "stale cluster directory was not removed");
    drop(cluster);
    Ok(())
}
