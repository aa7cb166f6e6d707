//! Files and directories that hold secrets or hashes get their final mode when
//! they are created (no chmod window, whatever the umask), and an existing one
//! that is looser is tightened, as `server.key` is refused: the owner alone
//! may read the store and the secrets directory.

use std::io;
use std::path::Path;

/// Creates `path` empty with mode 0600 when absent (an existing file is left as it is).
#[cfg(unix)]
pub fn create_private_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` empty when absent.
#[cfg(not(unix))]
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes group and other permissions from an existing file or directory (symlinks are
/// never followed). Returns the old mode when it had to be tightened, `None` when it was
/// already private or is absent.
#[cfg(unix)]
pub fn tighten(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o777;
    if meta.file_type().is_symlink() || mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    tracing::warn!(path = %path.display(), old_mode = format!("{mode:o}"), new_mode = format!("{:o}", mode & 0o700), "tightened permissions: group and others must not read stagegate's store or secrets");
    Ok(Some(mode))
}

/// Nothing to tighten without Unix modes.
#[cfg(not(unix))]
pub fn tighten(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

/// Tightens the secrets directory and each namespace directory in it; a failure is logged
/// (the files in them are 0600 whatever happens) and never stops a reconcile.
pub fn tighten_secrets_dir(root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    for d in dirs {
        if let Err(e) = tighten(&d) {
            tracing::warn!(path = %d.display(), error = %e, "cannot tighten the permissions of a secrets directory");
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tightens_loose_and_leaves_private_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        create_private_file(&f).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(tighten(&f).unwrap(), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten(&f).unwrap(), Some(0o644));
        assert_eq!(mode(&f), 0o600);
        let ns = dir.path().join("ns");
        std::fs::create_dir(&ns).unwrap();
        std::fs::set_permissions(&ns, std::fs::Permissions::from_mode(0o755)).unwrap();
        tighten_secrets_dir(dir.path());
        assert_eq!(mode(&ns), 0o700);
    }
}
