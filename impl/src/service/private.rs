//! A deployment's data directory holds patient data, its internal links' secret and the
//! operator token: only the user who runs `serve` may read it. The directory is 0700, every
//! file in it 0600, and whatever the processes create later is born private (`serve` sets
//! the file-mode mask before it starts them, and they inherit it).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::service::{io, ServiceError};

/// The mode of the data directory and the directories in it.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in the data directory.
pub const FILE_MODE: u32 = 0o600;

/// From now on this process, and every process it starts, creates files and directories
/// without any permission for the group or others.
pub fn restrict_new_files() {
    // SAFETY: umask only sets the calling process's file-mode creation mask; it cannot
    // fail and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and its parents) if need be and makes it and everything in it private:
/// directories [`DIR_MODE`], files [`FILE_MODE`]. Returns how many entries it had to
/// tighten (a data directory from an earlier, laxer run).
pub fn make_private(dir: &Path) -> Result<usize, ServiceError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io(format!("creating the data directory {}", dir.display())))?;
    let mut tightened = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        // Not followed: a link's target is not the deployment's to change.
        let meta =
            std::fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
        let wanted = if meta.is_dir() {
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if meta.permissions().mode() & 0o777 != wanted {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .map_err(io(format!("restricting {}", path.display())))?;
            tightened += 1;
        }
        if meta.is_dir() {
            let entries =
                std::fs::read_dir(&path).map_err(io(format!("reading {}", path.display())))?;
            for entry in entries {
                pending.push(
                    entry
                        .map_err(io(format!("reading {}", path.display())))?
                        .path(),
                );
            }
        }
    }
    Ok(tightened)
}

/// Readies `dir` for a deployment before anything is written in it: new files private from
/// now on ([`restrict_new_files`]), the directory created or made private throughout
/// ([`make_private`]), and a line (logged and on stderr) if it had to tighten anything.
pub fn prepare_data_dir(dir: &Path) -> Result<(), ServiceError> {
    restrict_new_files();
    let tightened = make_private(dir)?;
    if tightened > 0 {
        tracing::warn!(
            dir = %dir.display(),
            tightened,
            "the data directory was readable by others: made private"
        );
        eprintln!(
            "drcheck serve: {} held {tightened} entries readable by others; made them private",
            dir.display()
        );
    }
    Ok(())
}

/// Writes `text` to a new file at `path` readable by its owner only (whatever the mask).
pub fn write_private(path: &Path, text: &str) -> Result<(), ServiceError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_lax_data_directory_is_made_private_throughout() {
        let dir = std::env::temp_dir().join(format!("drcheck-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("region-0")).unwrap();
        std::fs::write(dir.join("cluster.json"), "{}").unwrap();
        std::fs::write(dir.join("region-0").join("store.redb"), "x").unwrap();
        for p in [&dir, &dir.join("region-0")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in [
            dir.join("cluster.json"),
            dir.join("region-0").join("store.redb"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert_eq!(make_private(&dir).unwrap(), 4);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("region-0")), 0o700);
        assert_eq!(mode(&dir.join("cluster.json")), 0o600);
        assert_eq!(mode(&dir.join("region-0").join("store.redb")), 0o600);
        // Already private: nothing to change.
        assert_eq!(make_private(&dir).unwrap(), 0);
        write_private(&dir.join("token"), "t").unwrap();
        assert_eq!(mode(&dir.join("token")), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
