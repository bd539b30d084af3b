//! The harness itself: an ephemeral cluster runs as long as its handle lives and leaves
//! nothing behind, clusters of killed runs are swept by the next start, and a persistent
//! cluster still starts after its directory moved.

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

#[test]
fn a_persistent_cluster_starts_after_its_directory_moved() -> anyhow::Result<()> {
    let root = ephemeral_root().join(format!("moved-{}", std::process::id()));
    let (before, after) = (root.join("before"), root.join("after it's moved"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let cluster = Cluster::open_persistent(&before)?;
    cluster.start()?;
    cluster.stop()?;
    drop(cluster);
    std::fs::rename(&before, &after)?;
    let moved = Cluster::open_persistent(&after)?;
    let started = moved.start();
    let running = moved.is_running();
    moved.shutdown();
    let _ = std::fs::remove_dir_all(&root);
    started?;
    assert!(running);
    Ok(())
}
