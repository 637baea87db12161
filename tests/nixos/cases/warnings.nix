# enableWarnings (the default): /var/lib/nixos is not persisted while users and groups have no
# fixed ids, so they would be renumbered at the next boot. A file's parentDirectory under a
# home, which darlings ignores, is warned about too.
{
  about = "enableWarnings: /var/lib/nixos not persisted; parentDirectory under a home";
  forms = [
    "store:enableWarnings"
    "users:parentDirectory-ignored"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      users.users.hank.isNormalUser = true;
      darlings.persistence."/persist" = {
        directories = [ "/var/log" ];
        users.hank.files = [
          {
            file = ".ssh/known_hosts";
            parentDirectory.mode = "u=rwx,g=,o=";
          }
        ];
      };
    };
  expect = {
    warnings = [
      "/var/lib/nixos is not persisted"
      "users without uid: dhcpcd, hank, nscd"
      "users.hank file .ssh/known_hosts sets parentDirectory, which darlings ignores"
    ];
    settings = [ ''.persist[0].users.hank.files == [{path: ".ssh/known_hosts"}]'' ];
  };
}
