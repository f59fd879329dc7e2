import type { GatewayConfig } from '../lib/config.js';
import type { Stack, StackOptions } from './core/stack.js';
import { removeStackFile, writeStackFile } from './core/stack-file.js';
import { startEnvoyStack } from './envoy/stack.js';
import { startHaproxyStack } from './haproxy/stack.js';

// Which front runs is one entry here: a third front is one more folder and one more line.
const FRONTS: Record<GatewayConfig['front'], (config: GatewayConfig, options: StackOptions) => Promise<Stack>> = {
  envoy: startEnvoyStack,
  haproxy: startHaproxyStack,
};

/** Start the stack `config` describes; while it runs, <stateDir>/stack.json says where it is. */
export async function startStack(config: GatewayConfig, options: StackOptions = {}): Promise<Stack> {
  const stack = await FRONTS[config.front](config, options);
  try {
    writeStackFile(stack);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  const stop = stack.stop;
  // Removed first: a helper must not find a stack that is going away.
  stack.stop = () => {
    removeStackFile(config.stateDir);
    return stop();
  };
  return stack;
}
