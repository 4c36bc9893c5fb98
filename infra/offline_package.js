'use strict';

// Keeps `serverless package` offline. With a `layers:` block in the service, osls asks
// CloudFormation (DescribeStacks) whether the layer changed since the last deploy
// (AwsCompileLayers.compareWithLastLayer), which needs AWS credentials and the network even
// when only packaging. When the command is `package` there is nothing to compare with, so this
// plugin turns that lookup into a no-op; `deploy` keeps it and skips unchanged layer uploads.
class OfflinePackage {
  constructor(serverless) {
    this.serverless = serverless;
    const commands = (serverless.processedInput && serverless.processedInput.commands) || [];
    this.hooks =
      commands.join(' ') === 'package'
        ? { 'before:package:compileLayers': () => this.skipLayerComparison() }
        : {};
  }

  skipLayerComparison() {
    const compiler = this.serverless.pluginManager.plugins.find(
      (plugin) => plugin.constructor.name === 'AwsCompileLayers'
    );
    if (!compiler) throw new Error('osls changed: AwsCompileLayers plugin not found');
    compiler.compareWithLastLayer = async () => {};
  }
}

module.exports = OfflinePackage;
