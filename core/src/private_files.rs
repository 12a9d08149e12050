//! Files only their owner can read: every directory the server or the
//! client makes for its data is 0700 and every file it writes 0600, whatever
//! the umask. They hold password hashes, keys and who talks to whom.
//!
//! A file is created with its mode by `open(2)` itself (never wider, not
//! even briefly), then set to exactly that mode (a umask cannot take the
//! owner's own bits either). A file another library writes in place (the
//! SQLite database, the shell's history) is made here first, empty, so it
//! has its mode from the start; SQLite gives its `-wal` and `-shm` files the
//! mode of the database. What an older version left open to others is
//! closed when the program next uses it ([`tighten`]).
//!
//! With [`crate::crypto::keyfile`], the only modules of the core that touch
//! the file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A data directory: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// A file in one: its owner only, read and write.
pub const FILE_MODE: u32 = 0o600;

/// Makes `path` a directory only its owner can enter: made (with any
/// missing parent, each 0700) if missing, set to 0700 if it exists.
pub fn dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)?;
    set_mode(path, DIR_MODE)
}

/// Creates `path`, which must not exist yet (`AlreadyExists` otherwise,
/// even for a dangling symlink), holding `contents`, 0600.
pub fn create_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = open_new(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Replaces `path` with a 0600 file holding `contents`, atomically: it is
/// written to `NAME.new` beside it, then renamed over it, so a reader finds
/// the old file or the new one, whole, and never a wider mode.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temp = sibling(path, ".new");
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Err(e) = create_new(&temp, contents) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    fs::rename(&temp, path)
}

/// Makes sure `path` is a 0600 file, for a library that then opens and
/// writes it itself: made empty if missing, tightened if it exists.
pub fn file(path: &Path) -> io::Result<()> {
    match open_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(e),
    }
}

/// Sets an existing file to 0600 or directory to 0700, if it is not
/// already. A missing path is fine; a symlink, or anything that is not a
/// plain file or a directory, is left alone (it is not ours to change).
pub fn tighten(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = if meta.is_dir() {
        DIR_MODE
    } else if meta.is_file() {
        FILE_MODE
    } else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o777 == mode {
            return Ok(());
        }
    }
    set_mode(path, mode)
}

/// `path` with `suffix` added to its file name: `udpchat.sqlite3-wal`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Opens a new file for writing, 0600 from its creation on.
fn open_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn loosen(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn dirs_are_made_and_kept_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("data/users/alice");
        dir(&deep).unwrap();
        assert_eq!(mode(&root.path().join("data")), 0o700);
        assert_eq!(mode(&root.path().join("data/users")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        loosen(&deep, 0o755);
        dir(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700, "an existing open dir is closed");
    }

    #[test]
    fn new_files_are_owner_only_and_never_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("secret");
        create_new(&path, b"one").unwrap();
        assert_eq!(mode(&path), 0o600);
        let again = create_new(&path, b"two").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
    }

    #[test]
    fn replacing_a_file_that_was_open_to_all_leaves_it_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("known_servers");
        fs::write(&path, "old").unwrap();
        loosen(&path, 0o644);
        // A leftover from a write that died half way does not stop the next.
        fs::write(sibling(&path, ".new"), "half").unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert!(!sibling(&path, ".new").exists());
    }

    #[test]
    fn a_file_for_a_library_is_made_empty_or_tightened_and_kept() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("udpchat.sqlite3");
        file(&path).unwrap();
        assert_eq!((mode(&path), fs::read(&path).unwrap().len()), (0o600, 0));
        fs::write(&path, "data").unwrap();
        loosen(&path, 0o644);
        file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn tighten_closes_files_and_dirs_and_leaves_symlinks_and_missing_paths() {
        let root = tempfile::tempdir().unwrap();
        let (file_path, dir_path) = (root.path().join("f"), root.path().join("d"));
        fs::write(&file_path, "x").unwrap();
        fs::create_dir(&dir_path).unwrap();
        loosen(&file_path, 0o664);
        loosen(&dir_path, 0o775);
        tighten(&file_path).unwrap();
        tighten(&dir_path).unwrap();
        assert_eq!((mode(&file_path), mode(&dir_path)), (0o600, 0o700));

        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("theirs");
        fs::write(&target, "x").unwrap();
        loosen(&target, 0o644);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        tighten(&link).unwrap();
        assert_eq!(mode(&target), 0o644, "a symlink's target is not ours");
        tighten(&root.path().join("missing")).unwrap();
    }

    #[test]
    fn a_sibling_adds_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/d/udpchat.sqlite3"), "-wal"),
            Path::new("/d/udpchat.sqlite3-wal")
        );
    }
}
