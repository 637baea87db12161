# A stand-in for nixpkgs' pkgs.formats.toml, for tests/initrd-check only: renders an attribute set
# as TOML with inline tables and arrays, one top-level key per line. Builtins only. TOML allows
# every table to be written inline, so darlings reads this exactly as it reads the sectioned file
# nixpkgs writes; strings go through toJSON, whose escapes are all valid TOML escapes.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    isAttrs
    isBool
    isInt
    isList
    isString
    map
    toJSON
    typeOf
    ;
  key = k: toJSON k;
  value =
    v:
    if isString v then
      toJSON v
    else if isBool v then
      (if v then "true" else "false")
    else if isInt v then
      toString v
    else if isList v then
      "[" + concatStringsSep ", " (map value v) + "]"
    else if isAttrs v then
      "{" + concatStringsSep ", " (map (k: "${key k} = ${value v.${k}}") (attrNames v)) + "}"
    else
      throw "toml.nix: no TOML form for a ${typeOf v} (null values must be removed first)";
in
attrs: concatStringsSep "" (map (k: "${key k} = ${value attrs.${k}}\n") (attrNames attrs))
