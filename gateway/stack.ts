import type { GatewayConfig } from '../lib/config.js';
import type { Stack, StackOptions } from './core/stack.js';
import { startEnvoyStack } from './envoy/stack.js';
import { startHaproxyStack } from './haproxy/stack.js';

// Which front runs is one entry here: a third front is one more folder and one more line.
const FRONTS: Record<GatewayConfig['front'], (config: GatewayConfig, options: StackOptions) => Promise<Stack>> = {
  envoy: startEnvoyStack,
  haproxy: startHaproxyStack,
};

export function startStack(config: GatewayConfig, options: StackOptions = {}): Promise<Stack> {
  return FRONTS[config.front](config, options);
}
