# The one stand-in a whole NixOS 24.05 system needs to instantiate from the vendored tree:
# shellcheck, a Haskell program whose package set the tree lacks (hackage-packages.nix is missing;
# see ../shared/vendor/README.md), used only in the check phase of writeShellApplication. It is
# never run here (nothing is built), so an empty derivation stands in for it.
final: _prev: {
  shellcheck = final.runCommand "shellcheck-stand-in" { meta.mainProgram = "shellcheck"; } ''
    mkdir -p $out/bin
  '';
  shellcheck-minimal = final.shellcheck.overrideAttrs (_: {
    passthru.compiler = final.shellcheck;
  });
}
