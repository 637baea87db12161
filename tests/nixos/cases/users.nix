# users.<name>: home, uid and primary gid from users.users.<name> when NixOS declares them (so
# the entries bind in the initrd); a home given by hand for a user NixOS does not declare; a
# user NixOS does not know at all (entries wait for the root's passwd); an entry owned by
# another user; and the whole home kept (directories = [ "." ]), a form public configs use.
{
  about = "users.<name> home/uid/gid from users.users, deferred users, whole home";
  forms = [
    "users:from-users.users"
    "users:home-by-hand"
    "users:deferred"
    "users:entry-owner"
    "users:whole-home"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      users.groups.staff.gid = 2000;
      users.users.ivy = {
        isNormalUser = true;
        uid = 1006;
        group = "staff";
        home = "/srv/home/ivy";
      };
      users.users.jack = {
        isNormalUser = true;
        uid = 1007;
      };
      darlings.persistence."/persist" = {
        directories = [ "/var/lib/nixos" ];
        users.ivy.directories = [
          "Documents"
          {
            directory = "shared";
            user = "jack";
          }
        ];
        users.kim = {
          home = "/home/kim";
          directories = [ "notes" ];
        };
        users.lee.files = [ ".netrc" ];
        users.jack.directories = [ "." ];
      };
    };
  expect = {
    settings = [
      ''.persist[0].users.ivy == {home: "/srv/home/ivy", uid: 1006, gid: 2000, directories: [{path: "Documents"}, {path: "shared", user: "jack"}]}''
      ''.persist[0].users.kim == {home: "/home/kim", directories: [{path: "notes"}]}''
      ''.persist[0].users.lee == {files: [{path: ".netrc"}]}''
      ''.persist[0].directories | any(. == {path: "/home/jack", user: 1007, group: 100, mode: "0700"})''
      ''.persist[0].users | has("jack") | not''
    ];
    plan = [
      ''any(.steps[]; .target == "/srv/home/ivy/Documents" and .op == "bind" and .uid == 1006 and .gid == 2000)''
      ''any(.steps[]; .target == "/home/jack" and .op == "bind" and .uid == 1007 and .mode == "0700")''
      ''any(.steps[]; .op == "deferred" and (.target | test("lee")))''
    ];
  };
}
