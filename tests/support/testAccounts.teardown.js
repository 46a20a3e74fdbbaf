module.exports = require("./testAccounts.global").teardown;
