# Forms from public configurations that use environment.persistence, renamed: a store that is a
# directory inside a mounted /persist (/persist/system, with /persist neededForBoot), a user's
# whole home kept, ssh host keys with parentDirectory, and an explicit owner given as root.
{
  about = "public forms: /persist/system, whole home, parentDirectory on system files";
  forms = [
    "store:directory-on-needed-fs"
    "users:whole-home"
    "entry:parentDirectory"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "none";
        fsType = "tmpfs";
        options = [ "mode=755" ];
      };
      fileSystems."/persist" = {
        device = "/dev/disk/by-label/persist";
        fsType = "btrfs";
        neededForBoot = true;
      };
      users.users.dio = {
        isNormalUser = true;
        uid = 1010;
      };
      darlings.enable = true;
      darlings.root.backend = "tmpfs";
      darlings.persistence."/persist/system" = {
        hideMounts = true;
        directories = [
          "/etc/nixos"
          "/var/lib/nixos"
          {
            directory = "/var/lib/systemd/coredump";
            user = "root";
            group = "root";
            mode = "0755";
          }
        ];
        files = [
          {
            file = "/etc/ssh/ssh_host_ed25519_key";
            parentDirectory = {
              mode = "0755";
            };
          }
          "/etc/ssh/ssh_host_ed25519_key.pub"
        ];
        users.dio.directories = [ "." ];
      };
    };
  expect = {
    settings = [
      ''.persist[0].store == "/persist/system"''
      ''.persist[0].directories | any(. == {path: "/home/dio", user: 1010, group: 100, mode: "0700"})''
    ];
    plan = [ ''any(.steps[]; .target == "/home/dio" and .op == "bind")'' ];
  };
}
