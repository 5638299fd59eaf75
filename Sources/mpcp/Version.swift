/// The version `mpcp --version` prints.
let mpcpVersion = "0.1.0"
