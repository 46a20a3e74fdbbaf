module.exports = require("./testAccounts.global").setup;
