'use strict';

// serverless.yml reads the CloudFront Function's code through this file: `${file(x.js)}`
// runs a .js file and takes what it exports, so the code itself is handed over as text.
const fs = require('fs');
const path = require('path');

module.exports = () => fs.readFileSync(path.join(__dirname, 'crop_urls.js'), 'utf8');
