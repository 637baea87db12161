# The darlings package for nixpkgs' callPackage: the binary, linked against nixpkgs'
# libbtrfsutil (btrfs-progs) and libzfs_core (zfs) as shared libraries, which NixOS copies into
# the initrd with the binary; plus the man page and shell completions darlings prints itself.
{
  lib,
  stdenv,
  rustPlatform,
  pkg-config,
  installShellFiles,
  btrfs-progs,
  zfs,
}:
let
  manifest = (lib.importTOML ./Cargo.toml).package;
  # Only what cargo reads: the manifest names test and bench targets under tests/, so those go
  # in too (cargo refuses a manifest whose target files are missing).
  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./Cargo.toml
      ./Cargo.lock
      ./src
      ./backends
      # The preset table, which the binary embeds.
      ./presets
      # The journal catalog: installed below, and read by a unit test.
      ./initrd/darlings.catalog
      ./tests/cli.rs
      ./tests/privileged
      ./tests/bench
      ./tests/support
    ];
  };
  canRun = stdenv.buildPlatform.canExecute stdenv.hostPlatform;
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit (manifest) version;
  inherit src;

  cargoLock.lockFile = ./Cargo.lock;

  nativeBuildInputs = [
    pkg-config
    installShellFiles
    # libbtrfsutil-sys generates its bindings with bindgen, which needs libclang.
    rustPlatform.bindgenHook
  ];
  buildInputs = [
    btrfs-progs
    zfs
  ];

  # backends/build.rs links the static archives Debian ships unless told otherwise; nixpkgs'
  # zfs has none.
  env = {
    DARLINGS_LINK = "dynamic";
    DARLINGS_ZFS_LIB_DIR = "${lib.getLib zfs}/lib";
  };

  # The unit tests only: the privileged tier mounts filesystems as root and the CLI tests drive
  # a live system, neither of which the build sandbox has.
  cargoTestFlags = [
    "--workspace"
    "--lib"
  ];

  postInstall = ''
    install -Dm444 initrd/darlings.catalog $out/lib/systemd/catalog/darlings.catalog
  ''
  + lib.optionalString canRun ''
    $out/bin/darlings man > darlings.1
    installManPage darlings.1
    installShellCompletion --cmd darlings \
      --bash <($out/bin/darlings completions bash) \
      --fish <($out/bin/darlings completions fish) \
      --zsh <($out/bin/darlings completions zsh)
  '';

  meta = {
    inherit (manifest) description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "darlings";
    platforms = lib.platforms.linux;
  };
}
