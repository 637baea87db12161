//! Links the C libraries statically so the darlings binary runs in an initrd without them:
//! libbtrfsutil (btrfs feature) and libzfs_core + libnvpair, with libtirpc, which libnvpair's XDR
//! encoding needs since glibc dropped Sun RPC (zfs feature). Debian 12: libbtrfsutil-dev, and
//! `apt-get install --no-install-recommends libzfslinux-dev` from the contrib component.
//!
//! libbtrfsutil-sys asks pkg-config, and the pkg-config crate never links statically from a
//! system directory such as /usr/lib, whatever `LIBBTRFSUTIL_STATIC` says; so the static
//! archive is named here. This crate's link arguments come before the -sys crate's dynamic
//! `-lbtrfsutil`, and with `--as-needed` the shared library is then not recorded at all.
//!
//! `DARLINGS_LINK=dynamic` links the shared libraries instead, for package.nix: nixpkgs builds
//! zfs without static archives, and NixOS copies a binary's shared libraries into the initrd
//! itself (copy_bin_and_libs, the systemd initrd's store paths).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DARLINGS_ZFS_LIB_DIR");
    println!("cargo:rerun-if-env-changed=DARLINGS_LINK");
    let dynamic = std::env::var("DARLINGS_LINK").is_ok_and(|v| v == "dynamic");
    if std::env::var_os("CARGO_FEATURE_BTRFS").is_some() && !dynamic {
        link_static(&["btrfsutil"], "libbtrfsutil-dev");
    }
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_ZFS");
    if std::env::var_os("CARGO_FEATURE_ZFS").is_some() {
        if dynamic {
            link_dynamic(&["zfs_core", "nvpair"]);
        } else {
            link_static(
                &["zfs_core", "nvpair", "tirpc"],
                "libzfslinux-dev (apt-get install --no-install-recommends libzfslinux-dev, from Debian's contrib component)",
            );
            println!("cargo:rustc-link-lib=pthread");
        }
    }
}

/// Links each `lib<name>.so`, from `DARLINGS_ZFS_LIB_DIR` when it is set.
fn link_dynamic(libs: &[&str]) {
    if let Some(dir) = std::env::var_os("DARLINGS_ZFS_LIB_DIR") {
        println!(
            "cargo:rustc-link-search=native={}",
            Path::new(&dir).display()
        );
    }
    for lib in libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}

/// Links each `lib<name>.a` from the first library directory that has it.
fn link_static(libs: &[&str], package: &str) {
    let mut dirs: Vec<PathBuf> = std::env::var_os("DARLINGS_ZFS_LIB_DIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/lib/x86_64-linux-gnu",
        ]
        .map(PathBuf::from),
    );
    let found = |lib: &str| -> Option<PathBuf> {
        dirs.iter()
            .find(|d| Path::new(d).join(format!("lib{lib}.a")).is_file())
            .cloned()
    };
    for &lib in libs {
        match found(lib) {
            Some(dir) => {
                println!("cargo:rustc-link-search=native={}", dir.display());
                println!("cargo:rustc-link-lib=static={lib}");
                println!("cargo:rerun-if-changed={}/lib{lib}.a", dir.display());
            }
            None => {
                eprintln!("error: lib{lib}.a not found in {dirs:?}; install {package} or set DARLINGS_ZFS_LIB_DIR");
                std::process::exit(1);
            }
        }
    }
}
