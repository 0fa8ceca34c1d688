/** Fleet commands (rollout, worker, ...): registered here. */
import type { Command } from 'commander';
import type { CommandContext } from './single.js';

export function registerFleetCommands(_program: Command, _run: (action: (ctx: CommandContext) => Promise<number>, cmd: Command) => Promise<void>): void {}
