# Files bound (method = "auto", the default) and linked (method = "symlink", for files that
# programs replace by rename: impermanence#175, #197), at the system and in a home.
{
  about = "file method auto and symlink";
  forms = [
    "file:method-auto"
    "file:method-symlink"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      users.users.gina = {
        isNormalUser = true;
        uid = 1005;
      };
      darlings.persistence."/persist" = {
        directories = [ "/var/lib/nixos" ];
        files = [
          {
            file = "/etc/ssh/ssh_host_ed25519_key.pub";
            method = "symlink";
          }
          {
            file = "/etc/adjtime";
            method = "auto";
          }
        ];
        users.gina.files = [
          {
            file = ".config/monitors.xml";
            method = "symlink";
          }
        ];
      };
    };
  expect = {
    settings = [
      ''.persist[0].files == [{path: "/etc/ssh/ssh_host_ed25519_key.pub", method: "symlink"}, {path: "/etc/adjtime"}]''
      ''.persist[0].users.gina.files == [{path: ".config/monitors.xml", method: "symlink"}]''
    ];
    plan = [ ''any(.steps[]; .target == "/etc/ssh/ssh_host_ed25519_key.pub" and (.op == "symlink" or .method == "symlink"))'' ];
  };
}
