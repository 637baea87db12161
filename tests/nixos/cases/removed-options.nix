# impermanence options darlings does not have: each must fail with a sentence saying what to
# do (not "does not exist"), in darlings.persistence and in a directory entry.
{
  about = "allowOther, removePrefixDirectory, defaultDirectoryMethod, directory method";
  forms = [
    "removed:allowOther"
    "removed:removePrefixDirectory"
    "removed:defaultDirectoryMethod"
    "removed:directory-method"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      darlings.persistence."/persist" = {
        allowOther = true;
        removePrefixDirectory = false;
        defaultDirectoryMethod = "bindfs";
        directories = [
          "/var/lib/nixos"
          {
            directory = "/var/lib/docker";
            method = "symlink";
          }
        ];
      };
    };
  expect.failures = [
    "darlings.persistence.\"/persist\".allowOther (set in"
    "every user reaches the files as their own permissions allow; remove allowOther"
    "darlings.persistence.\"/persist\".removePrefixDirectory (set in"
    "remove removePrefixDirectory and move those files in the store out of their prefix directory"
    "darlings.persistence.\"/persist\".defaultDirectoryMethod (set in"
    "darlings.persistence.\"/persist\".directories entry /var/lib/docker.method (set in"
    "remove `method` (a file entry takes method = \"auto\" or \"symlink\")"
  ];
}
