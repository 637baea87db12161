# Home Manager's home.persistence, as impermanence v2 takes it: inside home-manager.users.<name>,
# paths relative to the home, forwarded to darlings.persistence."<store>".users.<name> and merged
# with the NixOS side's entries for the same user. One Home Manager store is disabled, one is
# named with persistentStoragePath, and one user also imports the Home Manager module by hand
# (harmless: the module system imports a file once). Home Manager itself is the stand-in in
# ../home-manager-stand-in.nix: its source is not available in CI.
{
  about = "Home Manager home.persistence forwarded to the NixOS module";
  forms = [
    "home-manager:home.persistence"
    "home-manager:persistentStoragePath"
    "home-manager:enable"
    "home-manager:imported-by-hand"
  ];
  module =
    { ... }:
    {
      imports = [
        ../tmpfs-persist.nix
        ../home-manager-stand-in.nix
      ];
      users.users.bird = {
        isNormalUser = true;
        uid = 1000;
      };
      users.users.fish = {
        isNormalUser = true;
        uid = 1001;
      };
      darlings.persistence."/persist" = {
        hideMounts = true;
        directories = [ "/var/lib/nixos" ];
        users.bird.files = [ ".screenrc" ];
      };
      home-manager.users.bird = {
        home.persistence."/persist" = {
          directories = [
            "Downloads"
            ".local/share/subdir/"
            {
              directory = ".gnupg";
              mode = "0700";
            }
            {
              directory = "owned/by/other/user";
              user = "fish";
            }
          ];
          files = [
            ".config/persistence_test"
            {
              file = ".config/mimeapps.list";
              method = "symlink";
            }
          ];
        };
        home.persistence."/old" = {
          enable = false;
          directories = [ "Old" ];
        };
      };
      home-manager.users.fish =
        { ... }:
        {
          imports = [ ../../../initrd/nixos/home-manager.nix ];
          home.persistence.main = {
            persistentStoragePath = "/persist";
            hideMounts = true;
            allowTrash = true;
            directories = [ "Music" ];
          };
        };
    };
  expect = {
    settings = [
      ''.persist | length == 1''
      ''.persist[0].users.bird.directories == [{path: "Downloads"}, {path: ".local/share/subdir"}, {path: ".gnupg", mode: "0700"}, {path: "owned/by/other/user", user: "fish"}]''
      ''.persist[0].users.bird.files == [{path: ".screenrc"}, {path: ".config/persistence_test"}, {path: ".config/mimeapps.list", method: "symlink"}]''
      ''.persist[0].users.fish.directories == [{path: "Music", "hide-mount": true, "allow-trash": true}]''
      ''.persist[0] | ."hide-mounts" == false and .directories == [{path: "/var/lib/nixos", "hide-mount": true}]''
    ];
    plan = [ ''any(.steps[]; .target == "/home/bird/Downloads" and .op == "bind" and .uid == 1000)'' ];
  };
}
